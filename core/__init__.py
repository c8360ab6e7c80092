"""Rules shared by both HTTP surfaces and the worker; no wire models, no HTTP."""
