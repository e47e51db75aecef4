"""Trims Render's published OpenAPI document to the operations the Render scaler calls and
everything they reference, each kept object unchanged.

Usage: save the whole document as render-full.json here, then `python3 trim-render.py`
(writes render.json).
"""
import json, sys, copy
from urllib.parse import unquote

def walk_refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == '$ref' and isinstance(v, str):
                out.add(v)
            else:
                walk_refs(v, out)
    elif isinstance(node, list):
        for v in node:
            walk_refs(v, out)

def pointer_get(doc, ref):
    parts = ref.lstrip('#/').split('/')
    node = doc
    for p in parts:
        p = p.replace('~1', '/').replace('~0', '~')
        node = node[p]
    return node

def trim(doc, keep_ops, sections):
    out = {k: v for k, v in doc.items() if k not in ('paths',) + tuple(sections)}
    out['paths'] = {}
    for path, methods in keep_ops.items():
        item = doc['paths'][path]
        new = {k: v for k, v in item.items() if k in methods or k == 'parameters'}
        out['paths'][path] = new
    # transitive closure of refs
    seen = set()
    todo = set()
    walk_refs(out['paths'], todo)
    while todo:
        ref = todo.pop()
        if ref in seen: continue
        seen.add(ref)
        parts = ref.lstrip('#/').split('/')
        if parts[0] == 'paths':
            # a ref into another operation: keep that whole path item's method
            path = unquote(parts[1]).replace('~1', '/')
            method = parts[2]
            out['paths'].setdefault(path, {'parameters': doc['paths'][path].get('parameters', [])} if 'parameters' in doc['paths'][path] else {})
            out['paths'][path][method] = doc['paths'][path][method]
            walk_refs(doc['paths'][path][method], todo)
            walk_refs(doc['paths'][path].get('parameters', []), todo)
            continue
        # components/x/name or definitions/name
        if parts[0] == 'components':
            sec, name = parts[1], parts[2].replace('~1', '/')
            out.setdefault('components', {}).setdefault(sec, {})[name] = doc['components'][sec][name]
            walk_refs(doc['components'][sec][name], todo)
        else:
            sec, name = parts[0], parts[1].replace('~1', '/')
            out.setdefault(sec, {})[name] = doc[sec][name]
            walk_refs(doc[sec][name], todo)
    # Kept objects in the document's own order, so the output does not depend on the walk.
    out['paths'] = {k: out['paths'][k] for k in doc['paths'] if k in out['paths']}
    kept_sections = out.get('components', {})
    out['components'] = {
        sec: {k: kept_sections[sec][k] for k in doc['components'][sec] if k in kept_sections[sec]}
        for sec in doc['components'] if sec in kept_sections
    }
    if 'components' in doc and 'securitySchemes' in doc['components']:
        out.setdefault('components', {})['securitySchemes'] = doc['components']['securitySchemes']
    return out

render = json.load(open('render-full.json'))
r = trim(render, {'/services/{serviceId}': ['get'], '/services/{serviceId}/scale': ['post']}, ['components'])
r['tags'] = [t for t in render['tags'] if t['name'] == 'Services']
json.dump(r, open('render.json', 'w'), indent=2, ensure_ascii=False)
print(list(r['paths']), {k: len(v) for k, v in r.get('components', {}).items()})
