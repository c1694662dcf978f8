"""The directories a portal's passwords can live in, behind ``CredentialStore``
(helpdesk/services/credentials.py): LDAP (OpenLDAP with ppolicy), Active Directory over
LDAPS, and SCIM 2.0. The built-in SQL store lives with the protocol."""
