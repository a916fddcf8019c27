"""The one exception type users see.

Its message is a single line that names the thing at fault and how to fix it;
``alstudy.runner.run_stage`` prints it without a traceback.
"""


class PipelineError(Exception):
    """A problem the user can fix: bad params, a bad download, missing data."""
