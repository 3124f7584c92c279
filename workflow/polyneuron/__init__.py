"""polyneuron: find, score and test the neurons of multilingual language models.

Plain Python, no Snakemake imports: the workflow's scripts call these functions.
"""

__version__ = "0.1.0"


class PolyneuronError(Exception):
    """A user-facing error: bad input, bad config or an unsupported model.

    The message names the file, line or config key at fault.
    """
