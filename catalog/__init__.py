"""The tenant catalog: tenants, their provider accounts and routing, in SQL.

catalog.service.CatalogService is what the CLI and the admin API change it
with; every change reaches the components as a snapshot on
hub.catalog.tenants.v1 (catalog.relay), which catalog.view follows. This
package imports nothing heavy itself: components that only follow the topic
import catalog.view alone.
"""
