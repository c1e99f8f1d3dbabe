"""The dashboard's pages, one script each, run by ``st.navigation`` from ``clinical_ui/app.py``."""
