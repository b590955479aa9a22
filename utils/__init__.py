"""The machinery behind the nodes, one folder per subsystem (see ARCHITECTURE.md).

Layers, lowest first; a module imports only from its own layer or a lower one:
    log, paths, file_listing   general helpers
    images/, saving/, comfy/   images in and out, writing results, ComfyUI itself
    shared_job/                several servers on one folder
    batch/                     the life of a batch (uses all of the above)
"""
