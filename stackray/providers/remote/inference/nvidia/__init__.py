"""`remote::nvidia`: NVIDIA NIM, hosted (integrate.api.nvidia.com) or self-hosted."""
