"""Several ComfyUI servers on one folder, coordinated only through files in a job folder.

Entry point: job.py (SharedJob: the pass, claiming, renewing and finishing images);
passes.py the pass file and what it was made from (folder, settings); claim_store.py takes
images (the per-image claim chains and leases); claim_holding.py holds them (renewal, the
fence before a result is written, done records); files.py the exclusive publishes and the
file server's clock; job_folder.py where a job's folder is, its name and its errors.
"""
