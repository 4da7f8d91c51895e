"""HyCo2 demo app (Gradio): ``hyco2-app``, ``python -m hyco2.app``, or ``python app.py`` (Hugging Face Spaces).

Flags (or environment variables): --model (HYCO2_MODEL), --checkpoint (HYCO2_CHECKPOINT),
--quantize (HYCO2_QUANTIZE), --device (HYCO2_DEVICE), --host (HOST), --port (PORT), --share.
"""
from __future__ import annotations

import argparse
import os

from ..options import QUANTIZE_CHOICES
from ..settings import whole_number
from .callbacks import DEFAULT_BACKBONE, AppConfig, get_compressor
from .layout import build


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    on_spaces = bool(os.environ.get("SPACE_ID"))
    p = argparse.ArgumentParser(prog="hyco2-app", description="HyCo2: full vs compressed context, side by side, in the browser.")
    p.add_argument("--model", default=os.environ.get("HYCO2_MODEL"), help="backbone (default: the embedded SmolLM2)")
    p.add_argument("--checkpoint", default=os.environ.get("HYCO2_CHECKPOINT"), help="HyCo2 checkpoint folder")
    p.add_argument("--quantize", default=os.environ.get("HYCO2_QUANTIZE", "auto"), choices=QUANTIZE_CHOICES,
                   help="backbone weights, as the CLI's --quantize")
    p.add_argument("--device", default=os.environ.get("HYCO2_DEVICE"))
    p.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0" if on_spaces else "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", os.environ.get("GRADIO_SERVER_PORT", 7860))))
    p.add_argument("--share", action="store_true", default=os.environ.get("HYCO2_SHARE") == "1")
    p.add_argument("--max-chars", type=whole_number(1), default=int(os.environ.get("HYCO2_MAX_CHARS", AppConfig.max_chars)),
                   help="longest context a request may send, in characters (HYCO2_MAX_CHARS)")
    p.add_argument("--time-limit", type=float, default=float(os.environ.get("HYCO2_TIME_LIMIT", AppConfig.time_limit_s)),
                   help="seconds a request may take before it stops with a message (HYCO2_TIME_LIMIT)")
    p.add_argument("--queue-size", type=whole_number(1), default=int(os.environ.get("HYCO2_QUEUE_SIZE", AppConfig.queue_size)),
                   help="requests that may wait; more are told the app is busy (HYCO2_QUEUE_SIZE)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    AppConfig.model = args.model
    AppConfig.checkpoint = args.checkpoint
    AppConfig.quantize = args.quantize
    AppConfig.device = args.device
    AppConfig.max_chars, AppConfig.time_limit_s, AppConfig.queue_size = args.max_chars, args.time_limit, args.queue_size
    get_compressor(args.model or DEFAULT_BACKBONE)  # load before the first visitor
    demo = build()
    # one model run at a time on one device; beyond queue_size waiting, Gradio's "currently busy" message
    demo.queue(default_concurrency_limit=1, max_size=args.queue_size)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=True)


if __name__ == "__main__":
    main()
