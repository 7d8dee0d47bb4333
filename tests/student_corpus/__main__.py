"""``python tests/student_corpus``: print the corpus table (class, style, stage by stage)."""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from student_corpus import table  # noqa: E402

with tempfile.TemporaryDirectory() as folder:
    print(table(folder))
