"""AI session reports: drafted from the diarized transcript by the local model, reviewed,
edited and approved by the patient's therapist; nothing AI-made reaches a patient before that."""
