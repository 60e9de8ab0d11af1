"""CNN Architecture Explorer: the library behind the Streamlit app (no Streamlit imports here)."""

__version__ = "0.1.0"
