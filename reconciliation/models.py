"""Reconciliation: payouts, ERP revenue and bank deposits matched against storefront sales."""
