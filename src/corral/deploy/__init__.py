"""Deploys: the pipeline (build, release phase, verdict), git repositories and their hook."""
