"""Evaluation: objective metrics and the listening report of the evaluate stage."""
