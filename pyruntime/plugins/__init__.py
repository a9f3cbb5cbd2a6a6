"""The CNI plugins of this project, one per package."""
