"""Training: data readers, the three stages, and the command line (``python -m hyco2.training``)."""
from .data import QAExample, read_jsonl, read_qa, read_squad, read_texts
from .trainer import STAGES, StageConfig, Trainer, make_records

__all__ = ["QAExample", "STAGES", "StageConfig", "Trainer", "make_records", "read_jsonl", "read_qa",
           "read_squad", "read_texts"]
