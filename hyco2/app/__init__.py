"""The Gradio app: its layout (``layout``), callbacks (``callbacks``) and server (``__main__``); it only calls the library."""
