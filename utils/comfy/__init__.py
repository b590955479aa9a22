"""ComfyUI itself: its internals, its /prompt endpoint and its server address.

bridge.py is the only module in the pack that touches ComfyUI's internals; queue_control.py
re-POSTs prompts with urllib; prompt_watcher.py follows a prompt to its end; ui_preview.py
builds the saver's preview entries.
"""
