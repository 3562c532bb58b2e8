//! The resource server: the PropTech API ([`crm`]) behind `deedbolt-guard`, documented by
//! its OpenAPI description ([`openapi`]), and OpenID Connect `/userinfo` ([`userinfo`]).

pub mod crm;
pub(crate) mod openapi;
pub mod userinfo;
