"""Choices the command lines share that need no model loaded (so `hyco2-batch report` starts without torch)."""

#: How the backbone's weights are held: auto (bf16 under 1B parameters, NF4 from there on CUDA), NF4 or int8
#: through bitsandbytes on CUDA, bfloat16, or as stored.
QUANTIZE_CHOICES = ("auto", "4bit", "8bit", "bf16", "none")
