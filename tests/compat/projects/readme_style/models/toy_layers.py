# Not a model script: a module the toy model imports from its own folder (copied with it).
def scale(value, factor):
    return value * factor
