"""The description of pass.json (passes/pass_format.py): complete, and every name in it checked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from passes import pass_format, validation
from passes.pass_format import (
    BARCODE,
    BEACON,
    FEATURED_ACTION,
    FIELDS,
    LAYOUTS,
    LOCATION,
    NFC,
    PASS,
    PERSON_NAME,
    RELEVANT_DATE,
    SEAT,
    SEMANTIC_TAGS,
    UPCOMING_ENTRY,
    Kind,
    ListOf,
    Shape,
    Unused,
)


def kinds_in(kind: Kind | None) -> Iterator[Kind]:
    """Every kind reachable from `kind`, itself included."""
    if kind is None:
        return
    yield kind
    if isinstance(kind, Shape):
        for sub in (*kind.keys.values(), *kind.quiet.values()):
            yield from kinds_in(sub)
    elif isinstance(kind, ListOf | Unused):
        yield from kinds_in(kind.item if isinstance(kind, ListOf) else kind.kind)


def described() -> list[Kind]:
    return [*kinds_in(PASS), *(k for tag in SEMANTIC_TAGS.values() for k in kinds_in(tag))]


def test_every_kind_and_rule_the_description_names_is_checked_and_used() -> None:
    kinds = described()
    named = {kind for kind in kinds if isinstance(kind, str)}
    rules = {rule for kind in kinds if isinstance(kind, Shape | ListOf) for rule in kind.rules}

    assert named - set(validation._KINDS) - set(validation._VALUE_CHECKS) == set()
    assert rules - set(validation._RULES) == set()
    # Nothing checked that the description no longer names.
    assert set(validation._VALUE_CHECKS) - named == set()
    assert set(validation._RULES) - rules == set()


# JSON keys of apple/pass-builder's Protobufs (commit 63efd0f7, June 2026), as its Swift model
# writes them into pass.json. PassFields.fieldCustomization is Pass Designer's, not Wallet's.
PASS_PROTO: dict[str, tuple[Shape, str]] = {
    "Pass": (
        PASS,
        "serialNumber webServiceURL authenticationToken passTypeIdentifier teamIdentifier "
        "organizationName description sharingProhibited associatedStoreIdentifiers "
        "auxiliaryStoreIdentifiers expirationDate voided barcodes maxDistance relevantDate "
        "relevantDates locations beacons backgroundColor foregroundColor labelColor stripColor "
        "footerBackgroundColor suppressHeaderDarkening useAutomaticColors eventLogoText logoText "
        "groupingIdentifier nfc preferredStyleSchemes semantics appLaunchURL managementURL "
        "accessibilityURL addOnURL bagPolicyURL merchandiseURL orderFoodURL "
        "parkingInformationURL purchaseParkingURL sellURL transferURL transitInformationURL "
        "contactVenueEmail contactVenuePhoneNumber contactVenueWebsite directionsInformationURL "
        "changeSeatURL entertainmentURL purchaseAdditionalBaggageURL purchaseLoungeAccessURL "
        "purchaseWifiURL upgradeURL registerServiceAnimalURL reportLostBagURL "
        "requestWheelchairURL transitProviderEmail transitProviderPhoneNumber "
        "transitProviderWebsiteURL upcomingPassInformation featuredActions logoSymbolName",
    ),
    "PassFields": (
        LAYOUTS["boardingPass"],
        "headerFields primaryFields secondaryFields auxiliaryFields backFields "
        "additionalInfoFields transitType footerFields",
    ),
    "PassFieldContent": (
        FIELDS["auxiliaryFields"],
        "key value label attributedValue changeMessage dataDetectorTypes textAlignment "
        "dateStyle timeStyle ignoresTimeZone isRelative numberStyle currencyCode",
    ),
    "PassBarcode": (BARCODE, "format message messageEncoding altText"),
    "PassBeacon": (BEACON, "proximityUUID major minor relevantText"),
    "PassLocation": (LOCATION, "latitude longitude altitude relevantText"),
    "PassNFC": (NFC, "encryptionPublicKey message requiresAuthentication"),
    "PassRelevantDate": (RELEVANT_DATE, "date startDate endDate"),
    "PassAction": (FEATURED_ACTION, "identifier type url"),
    "PassSeat": (
        SEAT,
        "seatDescription seatIdentifier seatNumber seatRow seatSection seatAisle seatLevel "
        "seatType seatSectionColor",
    ),
    "PassPersonName": (
        PERSON_NAME,
        "namePrefix givenName middleName familyName nameSuffix nickname phoneticRepresentation",
    ),
    "UpcomingPassInformationEntry": (
        UPCOMING_ENTRY,
        "identifier name type URLs auxiliaryStoreIdentifiers additionalInfoFields backFields "
        "dateInformation images isActive semantics",
    ),
}


@pytest.mark.parametrize("message", PASS_PROTO)
def test_the_description_knows_every_key_of_pass_builders_protobufs(message: str) -> None:
    shape, keys = PASS_PROTO[message]
    assert set(keys.split()) - set(shape.keys) == set()


def test_the_description_knows_every_semantic_tag_of_pass_builders_protobufs() -> None:
    # pass-builder's model writes airlinePassengerCapabilities as passengerCapabilities; three
    # of its spellings Wallet does not read are warned about (SEMANTIC_MISSPELLINGS).
    tags = (
        "admissionLevel admissionLevelAbbreviation additionalTicketAttributes attendeeName "
        "entranceDescription eventType eventName eventStartDate eventStartDateInfo eventEndDate "
        "seats tailgatingAllowed venueBoxOfficeOpenDate venueCloseDate venueDoorsOpenDate "
        "venueEntrance venueEntranceDoor venueEntranceGate venueEntrancePortal "
        "venueFanZoneOpenDate venueGatesOpenDate venueLocation venueName venueOpenDate "
        "venueParkingLotsOpenDate venuePhoneNumber venueRegionName venueRoom "
        "awayTeamAbbreviation awayTeamLocation awayTeamName homeTeamAbbreviation "
        "homeTeamLocation homeTeamName leagueAbbreviation leagueName sportName genre albumIDs "
        "artistIDs performerNames playlistIDs airlineCode passengerCapabilities boardingGroup "
        "boardingZone boardingSequenceNumber carNumber confirmationNumber currentArrivalDate "
        "currentBoardingDate currentDepartureDate departureAirportCode departureAirportName "
        "departureAirportTimeZone departureCityName departureGate departureLocation "
        "departureLocationDescription departurePlatform departureStationName departureTerminal "
        "destinationAirportCode destinationAirportName destinationAirportTimeZone "
        "destinationCityName destinationGate destinationLocation destinationLocationDescription "
        "destinationPlatform destinationStationName destinationTerminal duration flightCode "
        "flightNumber internationalDocumentsAreVerified "
        "internationalDocumentsVerifiedDeclarationName membershipProgramName "
        "membershipProgramNumber originalBoardingDate originalDepartureDate originalArrivalDate "
        "passengerAirlineSSRs passengerInformationSSRs passengerName passengerServiceSSRs "
        "passengerEligibleSecurityPrograms priorityStatus securityScreening ticketFareClass "
        "transitProvider transitStatus transitStatusReason vehicleName vehicleNumber vehicleType "
        "balance silenceRequested totalPrice wifiAccess"
    )
    assert set(tags.split()) - set(SEMANTIC_TAGS) == set()
    assert {"airlineLoungePlaceID", "departureAirportSecurityPrograms"} <= set(
        pass_format.SEMANTIC_MISSPELLINGS
    )
