"""The life of a batch: one Batch object per loader node of one workflow on one folder.

Entry point: controller.py (the loader's next image, the HTTP routes, the user's Cancel and
Clear). batch.py holds a batch's whole life; chain.py watches each prompt to its end and queues
the next image; state.py persists the position; shared.py plugs in the shared job.
"""
