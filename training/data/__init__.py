"""Datasets: the synthetic scene engine on torch and readers for the standard formats."""
