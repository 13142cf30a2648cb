"""Score-to-audio synchronisation: features, multi-resolution DTW, note mapping, accuracy metrics."""
