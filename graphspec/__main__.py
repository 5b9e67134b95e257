from graphspec.main import main

main()
