"""The calls dashboard (server-rendered pages) and who may see it."""
