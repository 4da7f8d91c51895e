"""The Hugging Face Spaces entry point (``app_file`` in README's front matter): ``python app.py`` runs the
Gradio app of :mod:`hyco2.app` (also ``hyco2-app`` or ``python -m hyco2.app``), flags and environment as there."""
from hyco2.app.__main__ import main

if __name__ == "__main__":
    main()
