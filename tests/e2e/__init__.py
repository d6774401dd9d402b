"""Real-browser end-to-end tests (JupyterLab / Notebook 7 + Chromium)."""
