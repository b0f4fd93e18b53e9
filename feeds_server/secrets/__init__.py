"""Sign-in secrets: password hashing and opaque tokens, in one place so how each is stored is reviewed once."""
