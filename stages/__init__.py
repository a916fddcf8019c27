"""Thin DVC entry points: `python -m stages.<name>` reads params, calls the alstudy package, writes outputs."""

from alstudy.runner import quiet_native_logs

quiet_native_logs()  # before a stage's module imports TensorFlow
