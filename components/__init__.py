"""NiceGUI UI pieces. Components call app/ services; they never touch storage/."""
