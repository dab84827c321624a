#pragma once
/// @file saga.hpp
/// The only include you need for the core: definitions, the engine and the interfaces.

#include <saga/clock.hpp>
#include <saga/definition.hpp>
#include <saga/endpoint_policy.hpp>
#include <saga/engine.hpp>
#include <saga/envelope.hpp>
#include <saga/error.hpp>
#include <saga/json_limits.hpp>
#include <saga/observer.hpp>
#include <saga/participant.hpp>
#include <saga/retry.hpp>
#include <saga/state_store.hpp>
#include <saga/status.hpp>
#include <saga/step_context.hpp>
#include <saga/transport.hpp>
