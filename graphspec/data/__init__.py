"""A user's own data: .npz arrays, folders of class subfolders of images or text, and tables
(CSV, TSV, JSON Lines), turned into examples for a model's inputs and outputs.

One module per source (`npz`, `images`, `text`, `tables`), `source` to tell which a path is and
to list folders safely, `section` to check a spec's `data:` section without any data, and
`examples` to bind a source to a model's inputs and outputs. Nothing here imports TensorFlow or
Keras: validation reads headers only, and batches are NumPy arrays that any backend takes
(`graphspec.keras.files` hands them to Keras).
"""
