"""The Gradio app's layout (``layout``) and callbacks (``callbacks``); they only call ``hyco2``."""
