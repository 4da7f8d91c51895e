"""The page: inputs on the left, the two answers side by side, the highlighted context and counts."""
from __future__ import annotations

import gradio as gr

from hyco2.baselines import available_methods

from . import callbacks

INTRO = """# HyCo2 — hybrid context compression
A frozen LLM reads your context once; HyCo2 condenses it into a few **soft tokens** (the gist) and keeps
the most important **tokens verbatim** (the facts). Compare the answer from the full context with the
answer from the compressed one. Red tokens were kept (darker = higher keep probability); pale blue ones were dropped.
"""


#: Line breaks in the kept-words view: the only pieces without a score (hyco2.highlight) become zero-height
#: full-width items, so the next word starts a new line instead of sitting beside an empty chip.
CSS = "#highlighted .token-container:has(> .token:not(.highlighted)) { flex-basis: 100%; height: 0; overflow: hidden; }"


def _checkpoint_choices(model: str | None) -> dict:
    """The checkpoint dropdown's choices for a backbone, the first one chosen."""
    ckpts = callbacks.installed_checkpoints(model)
    return {"choices": ckpts, "value": ckpts[0][1] if ckpts else None}


def build() -> gr.Blocks:
    with gr.Blocks(title="HyCo2 context compression", css=CSS) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=3):
                context = gr.Textbox(label="Context", lines=10, max_lines=20, elem_id="context",
                                     placeholder="Paste a passage, or upload a .txt / .md file below.")
                upload = gr.File(label="…or upload .txt / .md files (several = a document list, counted per file)",
                                 file_types=[".txt", ".md"], type="filepath", file_count="multiple", elem_id="upload")
                documents = gr.State([])
                question = gr.Textbox(label="Question", elem_id="question")
            with gr.Column(scale=2):
                control = gr.Radio(["rate", "budget", "threshold"], value="rate", label="Compression control",
                                   elem_id="control")
                rate = gr.Slider(0.05, 1.0, value=callbacks.default_rate(), step=0.05, elem_id="rate", label="Keep rate (share of tokens kept verbatim)")
                budget = gr.Number(value=32, precision=0, minimum=0, label="Token budget (kept tokens)", visible=False,
                                   elem_id="budget")
                threshold = gr.Slider(0.05, 0.95, value=0.5, step=0.05, visible=False, elem_id="threshold",
                                      label="Threshold (keep words with keep probability ≥ this; hyco2 only)")
                method = gr.Dropdown(available_methods(), value="hyco2", label="Method",
                                     info="hyco2 adds 16 soft tokens; the others keep tokens only")
                model = gr.Dropdown(callbacks.installed_models(), value=callbacks.installed_models()[0],
                                    label="Backbone (installed)")
                checkpoint = gr.Dropdown(label="Checkpoint (adapter)", elem_id="checkpoint",
                                         info="the soft-token adapter: HyCo2's hybrid, ComprExIT's or COMI's, "
                                         "each with its own classifier", **_checkpoint_choices(None))
                full_reader = gr.Radio(list(callbacks.FULL_READERS), value=callbacks.FULL_READERS[0],
                                       label="Full-context column", elem_id="full-reader",
                                       info="the raw backbone reading everything, or HyCo2's own reader with its "
                                       "soft tokens beside every token (what compression is measured against)")
                go = gr.Button("Compress and answer", variant="primary", elem_id="go")
        gr.Examples(callbacks.examples(), inputs=[context, question, rate], label="Examples (click one)",
                    elem_id="examples")
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Full context")
                full_answer = gr.Textbox(label="Answer", elem_id="full-answer", interactive=False)
                full_info = gr.Markdown(elem_id="full-info")
            with gr.Column():
                gr.Markdown("### Compressed context")
                comp_answer = gr.Textbox(label="Answer", elem_id="compressed-answer", interactive=False)
                comp_info = gr.Markdown(elem_id="compressed-info")
        highlighted = gr.HighlightedText(label="Kept words (red: kept verbatim, darker = higher keep probability)", elem_id="highlighted", show_legend=False,
                                         combine_adjacent=False)
        with gr.Row():
            counts = gr.Markdown(elem_id="counts")
            chart = gr.BarPlot(x="count", y="tokens", label="Tokens", elem_id="chart", height=240)
        upload.change(callbacks.load_files, inputs=upload, outputs=[context, documents])
        # only the control that is chosen is shown (rate | budget | threshold)
        control.change(lambda c: [gr.update(visible=c == name) for name in ("rate", "budget", "threshold")],
                       inputs=control, outputs=[rate, budget, threshold], queue=False)
        model.change(lambda m: gr.update(**_checkpoint_choices(m)), inputs=model, outputs=checkpoint, queue=False)
        go.click(callbacks.run, inputs=[context, question, control, rate, budget, method, model, threshold, documents,
                                        checkpoint, full_reader],
                 outputs=[full_answer, full_info, comp_answer, comp_info, highlighted, counts, chart],
                 concurrency_limit=1)
    return demo
