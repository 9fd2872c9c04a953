"""`mlbench compare`: two benchmark runs side by side, per configuration, with the difference of
every figure and whether it is significant.

Pure (no MLflow here; `operators.tracking.lookup` reads the runs): `samples` (a configuration's
identity, one run, the figures it contributes), `pairing` (configurations paired, differences,
Welch's t-test / Fisher's exact test), `markdown` (the comparison as Markdown for a pull request).
"""

from operators.compare.markdown import to_markdown
from operators.compare.pairing import BenchmarkSide, Comparison, compare
from operators.compare.samples import ConfigurationKey, RunSample

__all__ = ["BenchmarkSide", "Comparison", "ConfigurationKey", "RunSample", "compare", "to_markdown"]
