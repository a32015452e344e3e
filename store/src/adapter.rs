//! The cqrs-es adapter over [`Decider`]: postgres-es and sqlite-es load streams through
//! `cqrs_es::Aggregate`, and the benchmark drives the cqrs-es framework with it. The
//! domain itself knows nothing of cqrs-es.
//!
//! [`Adapted<A>`] is `A` as a cqrs-es aggregate (its `handle` runs the pure `decide`,
//! its `apply` is `evolve`); [`AdaptedEvent<E>`] is an event with its explicit type and
//! version, serialised exactly as `E` (transparent).

use domain::{Decider, DomainEvent};
use serde::{Deserialize, Serialize};

/// An aggregate as cqrs-es sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Adapted<A>(pub A);

/// An event as cqrs-es sees it (stored exactly as the domain event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AdaptedEvent<E>(pub E);

impl<E: DomainEvent> cqrs_es::DomainEvent for AdaptedEvent<E> {
    fn event_type(&self) -> String {
        self.0.event_type().to_string()
    }
    fn event_version(&self) -> String {
        self.0.event_version().to_string()
    }
}

impl<A> cqrs_es::Aggregate for Adapted<A>
where
    A: Decider,
{
    const TYPE: &'static str = A::TYPE;
    type Command = A::Command;
    type Event = AdaptedEvent<A::Event>;
    type Error = A::Error;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.0.decide(command)? {
            sink.write(AdaptedEvent(event), self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.0.evolve(&event.0);
    }
}
