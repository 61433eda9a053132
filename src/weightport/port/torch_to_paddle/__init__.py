"""torch -> Paddle: trace a torch model (trace.py), write its Paddle twin from the translation tables
(translations/), with the runtime helpers copied into the generated code (runtime.py), and its
mapping table and layout manifest (tables.py)."""
