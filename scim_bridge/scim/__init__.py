"""The SCIM 2.0 protocol, pure: schema definitions, filters, PATCH and resource mapping."""
