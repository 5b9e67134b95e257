"""Everything that imports Keras lives in this package, so nothing else pays for TensorFlow."""
