"""The folder put on an experiment's PYTHONPATH: its `sitecustomize` installs crew's audit hook at start-up."""
