"""SecureDataFrame: immutable labelled data that only the seal authority can bring into being."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, final

from elspeth.security._authority import FrameCertificate, SealAuthority
from elspeth.security._errors import (
    AuthorityError,
    ClearanceError,
    FrameConstructionError,
    SealError,
)
from elspeth.security._levels import SecurityLevel, join, may_read

if TYPE_CHECKING:
    import pandas as pd

_HOW_TO_MAKE_ONE = (
    "SecureDataFrame instances come only from the seal authority: use "
    "SecureDataFrame.create_from_datasource(...) for a datasource's data, or "
    "with_new_data / with_uplifted_security_level / SecureDataFrame.derive_from for anything "
    "derived from existing frames"
)


def _digest(data: pd.DataFrame) -> bytes:
    from elspeth.security._digest import canonical_digest

    return canonical_digest(data)


def _private_copy(data: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"frame data must be a pandas DataFrame, not {type(data).__name__}")
    # pandas >= 3 is copy-on-write: a shallow copy is private to us and costs nothing until
    # either side writes. The seal check re-digests anyway, so a write through some other
    # path is caught rather than trusted.
    return data.copy(deep=False)


@final
class SecureDataFrame:
    """Tabular data with a security level, an authority-issued id, a content digest and a seal.

    Frames are immutable: new content or a higher level makes a new frame with a new id, and the
    seal authority (the sidecar daemon) computes the new level as the join of the parents' levels
    and any floor. There is no way to lower a level. Construction, subclassing, pickling and
    copying are refused; relabelling through ``object.__setattr__`` is caught by the next
    :meth:`verify_seal`, because the authority checks the seal against its own registration.
    """

    __slots__ = ("_authority", "_certificate", "_data")

    _authority: SealAuthority
    _certificate: FrameCertificate
    _data: pd.DataFrame

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise FrameConstructionError(_HOW_TO_MAKE_ONE)

    def __init_subclass__(cls, **kwargs: Any) -> NoReturn:
        raise FrameConstructionError("SecureDataFrame cannot be subclassed")

    # --- creation (the only ways in) -----------------------------------------------------

    @classmethod
    def create_from_datasource(
        cls, data: pd.DataFrame, classification: SecurityLevel, authority: SealAuthority
    ) -> SecureDataFrame:
        """Mint an origin frame for a datasource's data at its declared classification.

        The authority issues a one-shot grant for (classification, digest), then redeems it for
        a fresh frame id and seal.
        """
        classification = SecurityLevel.parse(classification)
        private = _private_copy(data)
        digest = _digest(private)
        grant = authority.authorize_construct(classification, digest)
        certificate = authority.redeem_grant(grant)
        _check_issued(certificate, digest, minimum=classification)
        if certificate.level != classification:
            raise AuthorityError(
                f"seal authority minted an origin frame at {certificate.level}, "
                f"but the datasource declared {classification}"
            )
        return cls._bind(authority, certificate, private)

    @classmethod
    def derive_from(
        cls,
        parents: Sequence[SecureDataFrame],
        data: pd.DataFrame,
        *,
        floor: SecurityLevel | None = None,
    ) -> SecureDataFrame:
        """A new frame holding ``data`` computed from all ``parents`` (aggregators, comparisons).

        Its level is the join of every parent's level and ``floor``, computed by the authority.
        """
        if not parents:
            raise FrameConstructionError("derive_from needs at least one parent frame")
        private = _private_copy(data)
        return cls._derive(parents, private, _digest(private), floor)

    @classmethod
    def _derive(
        cls,
        parents: Sequence[SecureDataFrame],
        data: pd.DataFrame,
        digest: bytes,
        floor: SecurityLevel | None,
    ) -> SecureDataFrame:
        authority = parents[0]._authority
        if any(parent._authority is not authority for parent in parents):
            raise FrameConstructionError("parent frames come from different seal authorities")
        certificate = authority.derive([p.frame_id for p in parents], digest, floor)
        minimum = join(*(p.security_level for p in parents), *((floor,) if floor else ()))
        _check_issued(certificate, digest, minimum=minimum)
        return cls._bind(authority, certificate, data)

    @classmethod
    def _bind(
        cls, authority: SealAuthority, certificate: FrameCertificate, data: pd.DataFrame
    ) -> SecureDataFrame:
        frame = object.__new__(cls)
        object.__setattr__(frame, "_authority", authority)
        object.__setattr__(frame, "_certificate", certificate)
        object.__setattr__(frame, "_data", data)
        return frame

    # --- derivation ----------------------------------------------------------------------

    def with_uplifted_security_level(self, level: SecurityLevel) -> SecureDataFrame:
        """The same data at ``join(self.level, level)``: a new frame, never a lower level."""
        target = join(self.security_level, SecurityLevel.parse(level))
        return SecureDataFrame._derive([self], self._data, self._certificate.digest, target)

    def with_new_data(self, data: pd.DataFrame) -> SecureDataFrame:
        """New content derived from this frame, at (at least) this frame's level."""
        private = _private_copy(data)
        return SecureDataFrame._derive([self], private, _digest(private), None)

    # --- checks --------------------------------------------------------------------------

    def validate_compatible_with(self, clearance: SecurityLevel) -> None:
        """Raise :class:`ClearanceError` if a component with ``clearance`` may not read this."""
        clearance = SecurityLevel.parse(clearance)
        if not may_read(clearance, self.security_level):
            raise ClearanceError(
                f"frame {self.frame_id} is {self.security_level}, above the clearance "
                f"{clearance} of the component that would receive it; raise that component's "
                f"clearance to at least {self.security_level} or do not send it this data"
            )

    def verify_seal(self) -> int:
        """Re-digest the data and have the authority check id, level, digest and seal.

        Returns the authority's audit id. Raises :class:`SealError` if the content changed since
        it was sealed or the authority's registration does not match (a relabelled, retired or
        forged frame).
        """
        try:
            certificate = self._certificate
            data = self._data
            authority = self._authority
        except AttributeError:
            raise SealError("frame was not issued by a seal authority") from None
        if _digest(data) != certificate.digest:
            raise SealError(f"frame {certificate.frame_id}: content changed since it was sealed")
        return authority.verify_seal(certificate)

    def verify_for(self, clearance: SecurityLevel) -> int:
        """The release check sinks and worker views run: clearance first, then the seal."""
        self.validate_compatible_with(clearance)
        return self.verify_seal()

    def retire(self) -> None:
        """Tell the authority this frame is no longer needed; it will never verify again."""
        self._authority.retire([self.frame_id])

    # --- read access ---------------------------------------------------------------------

    @property
    def data(self) -> pd.DataFrame:
        """The data, as a copy-on-write copy: writing to it never changes this frame."""
        return self._data.copy(deep=False)

    @property
    def security_level(self) -> SecurityLevel:
        return self._certificate.level

    @property
    def frame_id(self) -> str:
        return self._certificate.frame_id

    @property
    def digest(self) -> bytes:
        return self._certificate.digest

    @property
    def seal(self) -> bytes:
        return self._certificate.seal

    @property
    def certificate(self) -> FrameCertificate:
        return self._certificate

    @property
    def authority(self) -> SealAuthority:
        return self._authority

    @property
    def shape(self) -> tuple[int, int]:
        rows, columns = self._data.shape
        return int(rows), int(columns)

    def __repr__(self) -> str:
        try:
            return (
                f"<SecureDataFrame {self.frame_id} {self.security_level} "
                f"rows={self.shape[0]} columns={self.shape[1]}>"
            )
        except AttributeError:
            return "<SecureDataFrame (not issued by a seal authority)>"

    # --- refused operations --------------------------------------------------------------

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise FrameConstructionError("SecureDataFrame is immutable; derive a new frame instead")

    def __delattr__(self, name: str) -> NoReturn:
        raise FrameConstructionError("SecureDataFrame is immutable; derive a new frame instead")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise FrameConstructionError(
            "SecureDataFrame cannot be pickled: a copy would escape the seal authority"
        )

    def __copy__(self) -> NoReturn:
        raise FrameConstructionError("SecureDataFrame cannot be copied; it is immutable already")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise FrameConstructionError("SecureDataFrame cannot be copied; it is immutable already")


def _check_issued(certificate: FrameCertificate, digest: bytes, *, minimum: SecurityLevel) -> None:
    """Fail closed if the authority's answer does not match what was asked."""
    if certificate.digest != digest:
        raise AuthorityError("seal authority registered a different digest than requested")
    if certificate.level < minimum:
        raise AuthorityError(
            f"seal authority issued level {certificate.level} below the required {minimum}"
        )
