"""Local fake servers for the platforms Careline talks to."""
