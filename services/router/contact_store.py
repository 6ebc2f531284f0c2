"""What the router reads of the contact graph for a batch, in one script: the contacts owning the batch's
identities, its tickets' contacts and the contacts its commands name, each with the whole merge tree it is
in (the contact it was merged into up to the root, and every contact merged into that root).

The script returns JSON: {"contacts": {contact ID: [parent or false, identities, verified identities,
tickets, created (Unix seconds) or false, tags (the HASH's JSON list) or false, contacts kept apart]}} for
every contact that exists (has a HASH or identities).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

from services.router.contacts import ContactGraph, ContactRecord
from shared.read_model import (
    CONTACTS_CREATED_KEY,
    contact_apart_key,
    contact_identities_key,
    contact_key,
    contact_merged_into_key,
    contact_merged_key,
    contact_tickets_key,
    contact_verified_key,
    identity_key,
    ticket_key,
)

# Merge trees are shallow (each merge is one message or one agent's decision); this bounds a corrupt loop.
MAX_MERGE_DEPTH = 64
# Lua functions for the scripts that read merge trees: `merge_root(start, merged_into)` is the contact `start`
# was merged into, up to the root (`merged_into`: the key template, "%s" where the ID goes);
# `merge_tree(root, merged, seen, visit)` calls `visit` on the root and on every contact merged into it at any
# depth (`merged`: the merged set's key template), skipping those already in `seen`.
MERGE_TREE_LUA = f"""
local function merge_root(start, merged_into)
  local root, depth = start, 0
  while depth < {MAX_MERGE_DEPTH} do
    local parent = redis.call('GET', string.format(merged_into, root))
    if not parent or parent == start then break end
    root, depth = parent, depth + 1
  end
  return root
end
local function merge_tree(root, merged, seen, visit)
  local queue = {{root}}
  while #queue > 0 do
    local contact = table.remove(queue)
    if not seen[contact] then
      seen[contact] = true
      visit(contact)
      for _, child in ipairs(redis.call('SMEMBERS', string.format(merged, contact))) do table.insert(queue, child) end
    end
  end
end
"""
# ARGV: the key templates (identity, contact HASH, its identities, verified, tickets, merged_into, merged,
# ticket HASH, kept apart; "%s" where the ID goes), the created ZSET, how many identities and contacts follow, then
# the identities, the contact IDs and the ticket IDs.
READ_GRAPH = f"""{MERGE_TREE_LUA}
local t = {{}}
for i = 1, 9 do t[i] = ARGV[i] end
local created_key = ARGV[10]
local n_identities, n_contacts = tonumber(ARGV[11]), tonumber(ARGV[12])
local function key(template, id) return string.format(template, id) end
local starts = {{}}
for i = 13, 12 + n_identities do
  local owner = redis.call('GET', key(t[1], ARGV[i]))
  if owner then table.insert(starts, owner) end
end
for i = 13 + n_identities, 12 + n_identities + n_contacts do table.insert(starts, ARGV[i]) end
for i = 13 + n_identities + n_contacts, #ARGV do
  local owner = redis.call('HGET', key(t[8], ARGV[i]), 'contact_id')
  if owner then table.insert(starts, owner) end
end
local found, seen = {{}}, {{}}
local function visit(contact)
  local identities = redis.call('SMEMBERS', key(t[3], contact))
  if redis.call('EXISTS', key(t[2], contact)) == 1 or #identities > 0 then
    found[contact] = {{
      redis.call('GET', key(t[6], contact)) or false,
      identities,
      redis.call('SMEMBERS', key(t[4], contact)),
      redis.call('SMEMBERS', key(t[5], contact)),
      redis.call('ZSCORE', created_key, contact) or false,
      redis.call('HGET', key(t[2], contact), 'tags') or false,
      redis.call('SMEMBERS', key(t[9], contact)),
    }}
  else
    found[contact] = false
  end
end
for _, start in ipairs(starts) do merge_tree(merge_root(start, t[6]), t[7], seen, visit) end
return cjson.encode({{contacts = found}})
"""


def graph_args(identities: Iterable[str], contacts: Iterable[str], tickets: Iterable[str]) -> list[str]:
    identities, contacts = list(dict.fromkeys(identities)), list(dict.fromkeys(contacts))
    return [
        identity_key("%s"),
        contact_key("%s"),
        contact_identities_key("%s"),
        contact_verified_key("%s"),
        contact_tickets_key("%s"),
        contact_merged_into_key("%s"),
        contact_merged_key("%s"),
        ticket_key("%s"),
        contact_apart_key("%s"),
        CONTACTS_CREATED_KEY,
        str(len(identities)),
        str(len(contacts)),
        *identities,
        *contacts,
        *dict.fromkeys(tickets),
    ]


def parse_graph(raw: str | bytes) -> ContactGraph:
    """The graph the script found (cjson writes an empty list as {})."""
    graph = ContactGraph()
    for contact_id, row in (json.loads(raw).get("contacts") or {}).items():
        if not row:
            continue
        parent, identities, verified, tickets, created, tags, apart = row
        if parent:
            graph.parents[contact_id] = parent
        graph.contacts[contact_id] = ContactRecord(
            identities=frozenset(identities or ()),
            verified=frozenset(verified or ()),
            tickets=frozenset(tickets or ()),
            created=float(created) if created else math.inf,
            tags=frozenset(json.loads(tags)) if tags else frozenset(),
            apart=frozenset(apart or ()),
        )
    return graph
