"""llq: the Python face of the llq compiler (file formats, references, tools)."""
