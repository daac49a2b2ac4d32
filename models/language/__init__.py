"""Small distilled text models: the MiniLM text encoder for prompts."""
