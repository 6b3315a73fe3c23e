"""Price data shipped inside the package (see README.md here for where each file comes from)."""
