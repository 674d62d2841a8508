"""One module per chaos scenario; each `run(...)` returns a chaos.lab.Row."""
