//! Terminating SCRAM authentication when the client leg is TLS.
//!
//! Relaying SCRAM cannot work when both legs use TLS. The server offers
//! `SCRAM-SHA-256-PLUS`, bound to *its* certificate, which a client of the proxy never sees;
//! and a libpq client on TLS that is offered only `SCRAM-SHA-256` sends the GS2 flag `y` ("I
//! could bind but you do not offer it"), which a server on TLS takes for a downgrade attack and
//! refuses. The flag cannot be rewritten: the client's proof covers it. So with a TLS client the
//! proxy logs in itself: it asks the client for the password with
//! `AuthenticationCleartextPassword` (which travels inside the client's TLS session) and runs
//! SCRAM-SHA-256 to the server as the client, with `tls-server-end-point` channel binding
//! (`SCRAM-SHA-256-PLUS`) when its own connection to the server is TLS. The server's final
//! signature is checked, so a server that does not know the password is not believed.
//!
//! The password message is taken out of the read buffer into buffers wiped on drop, and its
//! bytes in the read buffer are wiped. `postgres-protocol`'s SCRAM state keeps its own copy of the password until the
//! exchange ends and does not wipe it: it lives for the few round trips of the login only.

use bytes::BytesMut;
use pgseal_wire::backend::{Authentication, ERROR_RESPONSE_TAG};
use pgseal_wire::frontend::{AUTH_RESPONSE_TAG, TERMINATE_TAG};
use postgres_protocol::authentication::sasl::{
    ChannelBinding, ScramSha256, SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
};
use zeroize::{Zeroize, Zeroizing};

use crate::halves::{Reader, Writer};
use crate::ProxyError;

/// Tag of `NoticeResponse`, which a server may send at any time.
const NOTICE_RESPONSE_TAG: u8 = b'N';

/// How the proxy's own login ended.
pub(crate) enum Outcome {
    /// The server accepted the proof and proved it knows the password; its
    /// `AuthenticationOk` and the rest of the start-up follow.
    Done,
    /// The server refused (its `ErrorResponse` has been forwarded to the client and it will
    /// close the connection).
    Refused,
    /// The client left instead of sending its password.
    ClientGone {
        /// It sent `Terminate` (rather than closing).
        terminated: bool,
    },
}

/// The TLS facts the login depends on.
pub(crate) struct UpstreamBinding {
    /// The connection to the server is TLS.
    pub(crate) tls: bool,
    /// `tls-server-end-point` of the server's certificate, when it can be computed.
    pub(crate) end_point: Option<Vec<u8>>,
}

/// Runs the login described in the module documentation. `mechanisms` are those the server's
/// `AuthenticationSASL` offered.
pub(crate) async fn terminate(
    client: &mut Reader,
    client_write: &mut Writer,
    server: &mut Reader,
    server_write: &mut Writer,
    mechanisms: &[String],
    upstream: UpstreamBinding,
) -> Result<Outcome, ProxyError> {
    let offers = |name: &str| mechanisms.iter().any(|m| m == name);
    let (mechanism, binding) = match upstream.end_point {
        Some(end_point) if offers(SCRAM_SHA_256_PLUS) => (
            SCRAM_SHA_256_PLUS,
            ChannelBinding::tls_server_end_point(end_point),
        ),
        _ if offers(SCRAM_SHA_256) => {
            // On TLS without PLUS on offer, 'y' tells the server we could bind: a server that
            // does offer PLUS (a downgrade by someone in between) then refuses, as for libpq.
            // If PLUS is on offer but the certificate's hash cannot be computed, 'n' is the
            // truthful answer.
            let binding = if upstream.tls && !offers(SCRAM_SHA_256_PLUS) {
                ChannelBinding::unrequested()
            } else {
                ChannelBinding::unsupported()
            };
            (SCRAM_SHA_256, binding)
        }
        _ => {
            return Err(ProxyError::UpstreamAuthentication {
                problem: "the server asks for SASL but offers no SCRAM-SHA-256 mechanism the \
                          proxy can use"
                    .to_owned(),
            })
        }
    };

    let mut out = BytesMut::new();
    Authentication::CleartextPassword
        .encode(&mut out)
        .map_err(ProxyError::Encode)?;
    crate::connection::send(client_write, &out)
        .await
        .map_err(ProxyError::ClientIo)?;
    out.clear();

    let password = match read_password(client).await? {
        Ok(password) => password,
        Err(gone) => return Ok(gone),
    };
    let mut scram = ScramSha256::new(&password, binding);
    drop(password);

    postgres_protocol::message::frontend::sasl_initial_response(
        mechanism,
        scram.message(),
        &mut out,
    )
    .map_err(|_| internal("cannot encode SASLInitialResponse"))?;
    send_server(server_write, &mut out).await?;

    let Some(challenge) = next_sasl(server, client_write).await? else {
        return Ok(Outcome::Refused);
    };
    let Authentication::SaslContinue(data) = challenge else {
        return Err(unexpected());
    };
    // PBKDF2 over the server's iteration count (4096 by default: milliseconds of CPU) runs off
    // the session's worker thread, whose other sessions would wait for it.
    let (mut scram, updated) = tokio::task::spawn_blocking(move || {
        let updated = scram.update(&data);
        (scram, updated)
    })
    .await
    .map_err(|_| internal("the SCRAM computation was interrupted"))?;
    updated.map_err(|err| ProxyError::UpstreamAuthentication {
        problem: format!("the server's SCRAM challenge is invalid: {err}"),
    })?;
    postgres_protocol::message::frontend::sasl_response(scram.message(), &mut out)
        .map_err(|_| internal("cannot encode SASLResponse"))?;
    send_server(server_write, &mut out).await?;

    let Some(outcome) = next_sasl(server, client_write).await? else {
        return Ok(Outcome::Refused);
    };
    let Authentication::SaslFinal(data) = outcome else {
        return Err(unexpected());
    };
    scram
        .finish(&data)
        .map_err(|_| ProxyError::UpstreamAuthentication {
            problem: "the server's SCRAM signature does not match: it does not know the \
                      password, so it may not be the server it claims to be"
                .to_owned(),
        })?;
    Ok(Outcome::Done)
}

fn internal(problem: &str) -> ProxyError {
    ProxyError::UpstreamAuthentication {
        problem: problem.to_owned(),
    }
}

fn unexpected() -> ProxyError {
    ProxyError::UpstreamAuthentication {
        problem: "the server sent an unexpected message during SCRAM authentication".to_owned(),
    }
}

async fn send_server(server_write: &mut Writer, out: &mut BytesMut) -> Result<(), ProxyError> {
    let sent = crate::connection::send(server_write, out).await;
    // The message holds a proof derived from the password: not left in the buffer.
    out.as_mut().zeroize();
    out.clear();
    sent.map_err(ProxyError::UpstreamIo)
}

/// The client's `PasswordMessage`, or how it left.
async fn read_password(
    client: &mut Reader,
) -> Result<Result<Zeroizing<Vec<u8>>, Outcome>, ProxyError> {
    let (tag, body) = loop {
        if let Some(message) = client
            .try_secret_frame()
            .map_err(ProxyError::ClientProtocol)?
        {
            break message;
        }
        if client.fill().await.map_err(ProxyError::ClientIo)? == 0 {
            return Ok(Err(Outcome::ClientGone { terminated: false }));
        }
    };
    if tag == TERMINATE_TAG {
        return Ok(Err(Outcome::ClientGone { terminated: true }));
    }
    if tag != AUTH_RESPONSE_TAG {
        return Err(ProxyError::ClientProtocolViolation {
            reason: "expected a password message in answer to the password request",
        });
    }
    match body.split_last() {
        Some((&0, password)) if !password.contains(&0) => Ok(Ok(Zeroizing::new(password.to_vec()))),
        _ => Err(ProxyError::ClientProtocolViolation {
            reason: "the password message is not one NUL-terminated string",
        }),
    }
}

/// The server's next SASL message; notices are forwarded to the client on the way. `None`
/// when the server refused with an `ErrorResponse` (forwarded to the client) or closed.
async fn next_sasl(
    server: &mut Reader,
    client_write: &mut Writer,
) -> Result<Option<Authentication>, ProxyError> {
    loop {
        while let Some(frame) = server.try_frame().map_err(ProxyError::UpstreamProtocol)? {
            match frame.tag {
                Authentication::TAG => {
                    return Authentication::decode(&frame.body)
                        .map(Some)
                        .map_err(ProxyError::UpstreamProtocol)
                }
                ERROR_RESPONSE_TAG | NOTICE_RESPONSE_TAG => {
                    let mut out = BytesMut::new();
                    frame.encode(&mut out).map_err(ProxyError::Encode)?;
                    crate::connection::send(client_write, &out)
                        .await
                        .map_err(ProxyError::ClientIo)?;
                    if frame.tag == ERROR_RESPONSE_TAG {
                        return Ok(None);
                    }
                }
                _ => return Err(unexpected()),
            }
        }
        if server.fill().await.map_err(ProxyError::UpstreamIo)? == 0 {
            return Ok(None);
        }
    }
}
