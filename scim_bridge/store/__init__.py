"""SQL for the protocol: SCIM filters as WHERE clauses, rows to and from SCIM resources, and
listing pages. Services use it; scim/ stays pure."""
