"""`remote::nvidia` safety: NVIDIA NeMo Guardrails."""
