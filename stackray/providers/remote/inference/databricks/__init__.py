"""`remote::databricks`: Databricks Model Serving."""
