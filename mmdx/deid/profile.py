"""The action table of the DICOM Basic Application Level Confidentiality Profile (PS3.15 Annex E, Table E.1-1).

Each row is ``(tag, attribute name, action code)`` exactly as the standard lists it for the Basic Profile.
Tags are ``"gggg,eeee"`` in hexadecimal; an ``x`` stands for any hexadecimal digit of a repeating group
(``"50xx,xxxx"`` curve data, ``"60xx,3000"`` overlay data). The action codes (Table E.1-1a):

====== ===========================================================================================
``D``  replace with a non-zero length dummy value consistent with the VR
``Z``  replace with a zero length value (or a dummy value consistent with the VR)
``X``  remove
``K``  keep
``C``  clean: replace with values of similar meaning known not to identify the patient
``U``  replace with a non-zero length UID that is internally consistent within the data set
``Z/D``  Z unless D is needed to keep the object conformant (type 2 versus type 1)
``X/Z``  X unless Z is needed (type 3 versus type 2)
``X/D``  X unless D is needed (type 3 versus type 1)
``X/Z/D``  X unless Z or D is needed
``X/Z/U*``  X unless Z or replacing the contained instance UIDs is needed (sequences of UID references)
====== ===========================================================================================

How mmdx resolves the compound codes without knowing each IOD's attribute types is
:func:`resolve_action`; the options that change these actions (dates shifted rather than emptied, patient
characteristics kept) are applied in :mod:`mmdx.deid.dicom`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    """What is done to one attribute (after resolving the standard's compound codes)."""

    REMOVE = "X"
    EMPTY = "Z"
    DUMMY = "D"
    KEEP = "K"
    CLEAN = "C"
    REMAP_UID = "U"


#: Every code the standard uses in the Basic Profile column.
CODES = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})

# (tag, name, Basic Profile action) -- PS3.15 Table E.1-1, in the standard's alphabetical order.
BASIC_PROFILE: tuple[tuple[str, str, str], ...] = (
    ("0008,0050", "Accession Number", "Z"),
    ("0018,4000", "Acquisition Comments", "X"),
    ("0040,0555", "Acquisition Context Sequence", "X/Z"),
    ("0008,0022", "Acquisition Date", "X/Z"),
    ("0008,002a", "Acquisition DateTime", "X/Z/D"),
    ("0018,1400", "Acquisition Device Processing Description", "X/D"),
    ("0018,11bb", "Acquisition Field Of View Label", "D"),
    ("0018,9424", "Acquisition Protocol Description", "X"),
    ("0008,0032", "Acquisition Time", "X/Z"),
    ("0040,4035", "Actual Human Performers Sequence", "X"),
    ("0010,21b0", "Additional Patient History", "X"),
    ("0040,a353", "Address (Trial)", "X"),
    ("0038,0010", "Admission ID", "X"),
    ("0038,0020", "Admitting Date", "X"),
    ("0008,1084", "Admitting Diagnoses Code Sequence", "X"),
    ("0008,1080", "Admitting Diagnoses Description", "X"),
    ("0038,0021", "Admitting Time", "X"),
    ("0000,1000", "Affected SOP Instance UID", "X"),
    ("0010,2110", "Allergies", "X"),
    ("4000,0010", "Arbitrary", "X"),
    ("0040,a078", "Author Observer Sequence", "X"),
    ("2200,0005", "Barcode Value", "X/Z"),
    ("300a,00c3", "Beam Description", "X"),
    ("300a,00dd", "Bolus Description", "X"),
    ("0010,1081", "Branch of Service", "X"),
    ("0016,004d", "Camera Owner Name", "X"),
    ("0018,1007", "Cassette ID", "X"),
    ("0012,0060", "Clinical Trial Coordinating Center Name", "Z"),
    ("0012,0082", "Clinical Trial Protocol Ethics Committee Approval Number", "X"),
    ("0012,0081", "Clinical Trial Protocol Ethics Committee Name", "D"),
    ("0012,0020", "Clinical Trial Protocol ID", "D"),
    ("0012,0021", "Clinical Trial Protocol Name", "Z"),
    ("0012,0072", "Clinical Trial Series Description", "X"),
    ("0012,0071", "Clinical Trial Series ID", "X"),
    ("0012,0030", "Clinical Trial Site ID", "Z"),
    ("0012,0031", "Clinical Trial Site Name", "Z"),
    ("0012,0010", "Clinical Trial Sponsor Name", "D"),
    ("0012,0040", "Clinical Trial Subject ID", "D"),
    ("0012,0042", "Clinical Trial Subject Reading ID", "D"),
    ("0012,0051", "Clinical Trial Time Point Description", "X"),
    ("0012,0050", "Clinical Trial Time Point ID", "Z"),
    ("0040,0310", "Comments on Radiation Dose", "X"),
    ("0040,0280", "Comments on the Performed Procedure Step", "X"),
    ("300a,02eb", "Compensator Description", "X"),
    ("0020,9161", "Concatenation UID", "U"),
    ("3010,000f", "Conceptual Volume Combination Description", "Z"),
    ("3010,0017", "Conceptual Volume Description", "Z"),
    ("3010,0006", "Conceptual Volume UID", "U"),
    ("0040,3001", "Confidentiality Constraint on Patient Data Description", "X"),
    ("3010,0013", "Constituent Conceptual Volume UID", "U"),
    ("0008,009c", "Consulting Physician's Name", "Z"),
    ("0008,009d", "Consulting Physician Identification Sequence", "X"),
    ("0050,001b", "Container Component ID", "X"),
    ("0040,051a", "Container Description", "X"),
    ("0040,0512", "Container Identifier", "D"),
    ("0070,0086", "Content Creator's Identification Code Sequence", "X"),
    ("0070,0084", "Content Creator's Name", "Z/D"),
    ("0008,0023", "Content Date", "Z/D"),
    ("0040,a730", "Content Sequence", "D"),
    ("0008,0033", "Content Time", "Z/D"),
    ("0018,0010", "Contrast/Bolus Agent", "Z/D"),
    ("0018,a003", "Contribution Description", "X"),
    ("0010,2150", "Country of Residence", "X"),
    ("0040,a307", "Current Observer (Trial)", "X"),
    ("0038,0300", "Current Patient Location", "X"),
    ("50xx,xxxx", "Curve Data", "X"),
    ("0008,0025", "Curve Date", "X"),
    ("0008,0035", "Curve Time", "X"),
    ("0040,a07c", "Custodial Organization Sequence", "X"),
    ("fffc,fffc", "Data Set Trailing Padding", "X"),
    ("0018,937f", "Decomposition Description", "X"),
    ("0008,2111", "Derivation Description", "X"),
    ("0018,700a", "Detector ID", "X/D"),
    ("3010,001b", "Device Alternate Identifier", "Z"),
    ("0050,0020", "Device Description", "X"),
    ("3010,002d", "Device Label", "D"),
    ("0018,1000", "Device Serial Number", "X/Z/D"),
    ("0016,004b", "Device Setting Description", "X"),
    ("0018,1002", "Device UID", "U"),
    ("fffa,fffa", "Digital Signatures Sequence", "X"),
    ("0400,0100", "Digital Signature UID", "U"),
    ("0020,9164", "Dimension Organization UID", "U"),
    ("0038,0040", "Discharge Diagnosis Description", "X"),
    ("4008,011a", "Distribution Address", "X"),
    ("4008,0119", "Distribution Name", "X"),
    ("300a,0016", "Dose Reference Description", "X"),
    ("300a,0013", "Dose Reference UID", "U"),
    ("3010,006e", "Dosimetric Objective UID", "U"),
    ("0018,9517", "End Acquisition DateTime", "X/D"),
    ("3010,0037", "Entity Description", "X"),
    ("3010,0035", "Entity Label", "D"),
    ("3010,0038", "Entity Long Label", "D"),
    ("3010,0036", "Entity Name", "X"),
    ("300a,0676", "Equipment Frame of Reference Description", "X"),
    ("0010,2160", "Ethnic Group", "X"),
    ("0040,4011", "Expected Completion DateTime", "X"),
    ("0008,0058", "Failed SOP Instance UID List", "U"),
    ("0070,031a", "Fiducial UID", "U"),
    ("0040,2017", "Filler Order Number / Imaging Service Request", "Z"),
    ("3008,0054", "First Treatment Date", "X/D"),
    ("300a,0196", "Fixation Device Description", "X"),
    ("0034,0002", "Flow Identifier", "D"),
    ("0034,0001", "Flow Identifier Sequence", "D"),
    ("3010,007f", "Fractionation Notes", "Z"),
    ("300a,0072", "Fraction Group Description", "X"),
    ("0020,9158", "Frame Comments", "X"),
    ("0020,0052", "Frame of Reference UID", "U"),
    ("0034,0007", "Frame Origin Timestamp", "D"),
    ("0018,1008", "Gantry ID", "X"),
    ("0018,1005", "Generator ID", "X"),
    ("0016,0076", "GPS Altitude", "X"),
    ("0016,0075", "GPS Altitude Ref", "X"),
    ("0016,008c", "GPS Area Information", "X"),
    ("0016,008d", "GPS Date Stamp", "X"),
    ("0016,0088", "GPS Dest Bearing", "X"),
    ("0016,0087", "GPS Dest Bearing Ref", "X"),
    ("0016,008a", "GPS Dest Distance", "X"),
    ("0016,0089", "GPS Dest Distance Ref", "X"),
    ("0016,0084", "GPS Dest Latitude", "X"),
    ("0016,0083", "GPS Dest Latitude Ref", "X"),
    ("0016,0086", "GPS Dest Longitude", "X"),
    ("0016,0085", "GPS Dest Longitude Ref", "X"),
    ("0016,008e", "GPS Differential", "X"),
    ("0016,007b", "GPS DOP", "X"),
    ("0016,0081", "GPS Img Direction", "X"),
    ("0016,0080", "GPS Img Direction Ref", "X"),
    ("0016,0072", "GPS Latitude", "X"),
    ("0016,0071", "GPS Latitude Ref", "X"),
    ("0016,0074", "GPS Longitude", "X"),
    ("0016,0073", "GPS Longitude Ref", "X"),
    ("0016,0082", "GPS Map Datum", "X"),
    ("0016,007a", "GPS Measure Mode", "X"),
    ("0016,008b", "GPS Processing Method", "X"),
    ("0016,0078", "GPS Satellites", "X"),
    ("0016,007d", "GPS Speed", "X"),
    ("0016,007c", "GPS Speed Ref", "X"),
    ("0016,0079", "GPS Status", "X"),
    ("0016,0077", "GPS Time Stamp", "X"),
    ("0016,007f", "GPS Track", "X"),
    ("0016,007e", "GPS Track Ref", "X"),
    ("0016,0070", "GPS Version ID", "X"),
    ("0070,0001", "Graphic Annotation Sequence", "D"),
    ("0040,4037", "Human Performer's Name", "X"),
    ("0040,4036", "Human Performer's Organization", "X"),
    ("0088,0200", "Icon Image Sequence", "X"),
    ("0008,4000", "Identifying Comments", "X"),
    ("0020,4000", "Image Comments", "X"),
    ("0028,4000", "Image Presentation Comments", "X"),
    ("0040,2400", "Imaging Service Request Comments", "X"),
    ("003a,0314", "Impedance Measurement DateTime", "D"),
    ("4008,0300", "Impressions", "X"),
    ("0008,0015", "Instance Coercion DateTime", "X"),
    ("0008,0014", "Instance Creator UID", "U"),
    ("0400,0600", "Instance Origin Status", "X"),
    ("0008,0081", "Institution Address", "X"),
    ("0008,1040", "Institutional Department Name", "X"),
    ("0008,1041", "Institutional Department Type Code Sequence", "X"),
    ("0008,0082", "Institution Code Sequence", "X/Z/D"),
    ("0008,0080", "Institution Name", "X/Z/D"),
    ("0010,1050", "Insurance Plan Identification", "X"),
    ("3010,004d", "Intended Phase End Date", "X/D"),
    ("3010,004c", "Intended Phase Start Date", "X/D"),
    ("0040,1011", "Intended Recipients of Results Identification Sequence", "X"),
    ("300a,0741", "Interlock DateTime", "D"),
    ("300a,0742", "Interlock Description", "D"),
    ("300a,0783", "Interlock Origin Description", "D"),
    ("4008,0111", "Interpretation Approver Sequence", "X"),
    ("4008,010c", "Interpretation Author", "X"),
    ("4008,0115", "Interpretation Diagnosis Description", "X"),
    ("4008,0202", "Interpretation ID Issuer", "X"),
    ("4008,0102", "Interpretation Recorder", "X"),
    ("4008,010b", "Interpretation Text", "X"),
    ("4008,010a", "Interpretation Transcriber", "X"),
    ("0008,3010", "Irradiation Event UID", "U"),
    ("0038,0011", "Issuer of Admission ID", "X"),
    ("0038,0014", "Issuer of Admission ID Sequence", "X"),
    ("0010,0021", "Issuer of Patient ID", "X"),
    ("0038,0061", "Issuer of Service Episode ID", "X"),
    ("0038,0064", "Issuer of Service Episode ID Sequence", "X"),
    ("0040,0513", "Issuer of the Container Identifier Sequence", "Z"),
    ("0040,0562", "Issuer of the Specimen Identifier Sequence", "Z"),
    ("2200,0002", "Label Text", "X/Z"),
    ("0028,1214", "Large Palette Color Lookup Table UID", "U"),
    ("0010,21d0", "Last Menstrual Date", "X"),
    ("0016,004f", "Lens Make", "X"),
    ("0016,0050", "Lens Model", "X"),
    ("0016,0051", "Lens Serial Number", "X"),
    ("0016,004e", "Lens Specification", "X"),
    ("0050,0021", "Long Device Description", "X"),
    ("0400,0404", "MAC", "X"),
    ("0016,002b", "Maker Note", "X"),
    ("0018,100b", "Manufacturer's Device Class UID", "U"),
    ("3010,0043", "Manufacturer's Device Identifier", "Z"),
    ("0002,0003", "Media Storage SOP Instance UID", "U"),
    ("0010,2000", "Medical Alerts", "X"),
    ("0010,1090", "Medical Record Locator", "X"),
    ("0010,1080", "Military Rank", "X"),
    ("0400,0550", "Modified Attributes Sequence", "X"),
    ("0020,3406", "Modified Image Description", "X"),
    ("0020,3401", "Modifying Device ID", "X"),
    ("3008,0056", "Most Recent Treatment Date", "X/D"),
    ("0018,937b", "Multi-energy Acquisition Description", "X"),
    ("003a,0310", "Multiplex Group UID", "U"),
    ("0008,1060", "Name of Physician(s) Reading Study", "X"),
    ("0040,1010", "Names of Intended Recipients of Results", "X"),
    ("0400,0551", "Nonconforming Modified Attributes Sequence", "X"),
    ("0400,0552", "Nonconforming Data Element Value", "X"),
    ("0040,a192", "Observation Date (Trial)", "X"),
    ("0040,a402", "Observation Subject UID (Trial)", "U"),
    ("0040,a193", "Observation Time (Trial)", "X"),
    ("0040,a171", "Observation UID", "U"),
    ("0010,2180", "Occupation", "X"),
    ("0008,1072", "Operator Identification Sequence", "X/D"),
    ("0008,1070", "Operators' Name", "X/Z/D"),
    ("0040,2010", "Order Callback Phone Number", "X"),
    ("0040,2011", "Order Callback Telecom Information", "X"),
    ("0040,2008", "Order Entered By", "X"),
    ("0040,2009", "Order Enterer's Location", "X"),
    ("0400,0561", "Original Attributes Sequence", "X"),
    ("0010,1000", "Other Patient IDs", "X"),
    ("0010,1002", "Other Patient IDs Sequence", "X"),
    ("0010,1001", "Other Patient Names", "X"),
    ("60xx,4000", "Overlay Comments", "X"),
    ("60xx,3000", "Overlay Data", "X"),
    ("0008,0024", "Overlay Date", "X"),
    ("0008,0034", "Overlay Time", "X"),
    ("300a,0760", "Override DateTime", "D"),
    ("0028,1199", "Palette Color Lookup Table UID", "U"),
    ("0040,a07a", "Participant Sequence", "X"),
    ("0010,1040", "Patient's Address", "X"),
    ("0010,1010", "Patient's Age", "X"),
    ("0010,0030", "Patient's Birth Date", "Z"),
    ("0010,1005", "Patient's Birth Name", "X"),
    ("0010,0032", "Patient's Birth Time", "X"),
    ("0038,0400", "Patient's Institution Residence", "X"),
    ("0010,0050", "Patient's Insurance Plan Code Sequence", "X"),
    ("0010,1060", "Patient's Mother's Birth Name", "X"),
    ("0010,0010", "Patient's Name", "Z"),
    ("0010,0101", "Patient's Primary Language Code Sequence", "X"),
    ("0010,0102", "Patient's Primary Language Modifier Code Sequence", "X"),
    ("0010,21f0", "Patient's Religious Preference", "X"),
    ("0010,0040", "Patient's Sex", "Z"),
    ("0010,2203", "Patient's Sex Neutered", "X/Z"),
    ("0010,1020", "Patient's Size", "X"),
    ("0010,2155", "Patient's Telecom Information", "X"),
    ("0010,2154", "Patient's Telephone Numbers", "X"),
    ("0010,1030", "Patient's Weight", "X"),
    ("0010,4000", "Patient Comments", "X"),
    ("0010,0020", "Patient ID", "Z"),
    ("300a,0650", "Patient Setup UID", "U"),
    ("0038,0500", "Patient State", "X"),
    ("0040,1004", "Patient Transport Arrangements", "X"),
    ("0040,0243", "Performed Location", "X"),
    ("0040,0254", "Performed Procedure Step Description", "X"),
    ("0040,0250", "Performed Procedure Step End Date", "X"),
    ("0040,4051", "Performed Procedure Step End DateTime", "X"),
    ("0040,0251", "Performed Procedure Step End Time", "X"),
    ("0040,0253", "Performed Procedure Step ID", "X"),
    ("0040,0244", "Performed Procedure Step Start Date", "X"),
    ("0040,4050", "Performed Procedure Step Start DateTime", "X"),
    ("0040,0245", "Performed Procedure Step Start Time", "X"),
    ("0040,0241", "Performed Station AE Title", "X"),
    ("0040,4030", "Performed Station Geographic Location Code Sequence", "X"),
    ("0040,0242", "Performed Station Name", "X"),
    ("0040,4028", "Performed Station Name Code Sequence", "X"),
    ("0008,1050", "Performing Physician's Name", "X"),
    ("0008,1052", "Performing Physician Identification Sequence", "X"),
    ("0040,1102", "Person's Address", "X"),
    ("0040,1104", "Person's Telecom Information", "X"),
    ("0040,1103", "Person's Telephone Numbers", "X"),
    ("0040,1101", "Person Identification Code Sequence", "D"),
    ("0040,a123", "Person Name", "D"),
    ("0008,1048", "Physician(s) of Record", "X"),
    ("0008,1049", "Physician(s) of Record Identification Sequence", "X"),
    ("0008,1062", "Physician(s) Reading Study Identification Sequence", "X"),
    ("4008,0114", "Physician Approving Interpretation", "X"),
    ("0040,2016", "Placer Order Number / Imaging Service Request", "Z"),
    ("0018,1004", "Plate ID", "X"),
    ("0010,21c0", "Pregnancy Status", "X"),
    ("0040,0012", "Pre-Medication", "X"),
    ("300a,000e", "Prescription Description", "X"),
    ("3010,007b", "Prescription Notes", "Z"),
    ("3010,0081", "Prescription Notes Sequence", "Z"),
    ("0070,1101", "Presentation Display Collection UID", "U"),
    ("0070,1102", "Presentation Sequence Collection UID", "U"),
    ("3010,0061", "Prior Treatment Dose Description", "X"),
    ("0040,4052", "Procedure Step Cancellation DateTime", "X"),
    ("0018,1030", "Protocol Name", "X/D"),
    ("300a,0619", "Radiation Dose Identification Label", "D"),
    ("300a,0623", "Radiation Dose In-Vivo Measurement Label", "D"),
    ("300a,067d", "Radiation Generation Mode Description", "Z"),
    ("300a,067c", "Radiation Generation Mode Label", "D"),
    ("300c,0113", "Reason for Omission Description", "X"),
    ("0040,100a", "Reason for Requested Procedure Code Sequence", "X"),
    ("0032,1030", "Reason for Study", "X"),
    ("3010,005c", "Reason for Superseding", "Z"),
    ("0040,2001", "Reason for the Imaging Service Request", "X"),
    ("0040,1002", "Reason for the Requested Procedure", "X"),
    ("0032,1066", "Reason for Visit", "X"),
    ("0032,1067", "Reason for Visit Code Sequence", "X"),
    ("300a,073a", "Recorded RT Control Point DateTime", "D"),
    ("3010,000b", "Referenced Conceptual Volume UID", "U"),
    ("0400,0402", "Referenced Digital Signature Sequence", "X"),
    ("300a,0083", "Referenced Dose Reference UID", "U"),
    ("3010,006f", "Referenced Dosimetric Objective UID", "U"),
    ("3010,0031", "Referenced Fiducials UID", "U"),
    ("3006,0024", "Referenced Frame of Reference UID", "U"),
    ("0040,4023", "Referenced General Purpose Scheduled Procedure Step Transaction UID", "U"),
    ("0008,1140", "Referenced Image Sequence", "X/Z/U*"),
    ("0040,a172", "Referenced Observation UID (Trial)", "U"),
    ("0038,0004", "Referenced Patient Alias Sequence", "X"),
    ("0010,1100", "Referenced Patient Photo Sequence", "X"),
    ("0008,1120", "Referenced Patient Sequence", "X"),
    ("0008,1111", "Referenced Performed Procedure Step Sequence", "X/Z/D"),
    ("0400,0403", "Referenced SOP Instance MAC Sequence", "X"),
    ("0008,1155", "Referenced SOP Instance UID", "U"),
    ("0004,1511", "Referenced SOP Instance UID in File", "U"),
    ("0008,1110", "Referenced Study Sequence", "X/Z"),
    ("0008,0092", "Referring Physician's Address", "X"),
    ("0008,0090", "Referring Physician's Name", "Z"),
    ("0008,0094", "Referring Physician's Telephone Numbers", "X"),
    ("0008,0096", "Referring Physician Identification Sequence", "X"),
    ("0010,2152", "Region of Residence", "X"),
    ("3006,00c2", "Related Frame of Reference UID", "U"),
    ("0040,0275", "Request Attributes Sequence", "X"),
    ("0032,1070", "Requested Contrast Agent", "X"),
    ("0040,1400", "Requested Procedure Comments", "X"),
    ("0032,1060", "Requested Procedure Description", "X/Z"),
    ("0040,1001", "Requested Procedure ID", "X"),
    ("0040,1005", "Requested Procedure Location", "X"),
    ("0018,9937", "Requested Series Description", "X"),
    ("0000,1001", "Requested SOP Instance UID", "U"),
    ("0032,1032", "Requesting Physician", "X"),
    ("0032,1033", "Requesting Service", "X"),
    ("0018,9185", "Respiratory Motion Compensation Technique Description", "X"),
    ("0010,2299", "Responsible Organization", "X"),
    ("0010,2297", "Responsible Person", "X"),
    ("4008,4000", "Results Comments", "X"),
    ("4008,0118", "Results Distribution List Sequence", "X"),
    ("4008,0042", "Results ID Issuer", "X"),
    ("300e,0008", "Reviewer Name", "X/Z"),
    ("3006,0028", "ROI Description", "X"),
    ("3006,0038", "ROI Generation Description", "X"),
    ("3006,00a6", "ROI Interpreter", "Z"),
    ("3006,0026", "ROI Name", "Z"),
    ("3006,0088", "ROI Observation Description", "X"),
    ("3006,0085", "ROI Observation Label", "X"),
    ("300a,0615", "RT Accessory Device Slot ID", "Z"),
    ("300a,0611", "RT Accessory Holder Slot ID", "Z"),
    ("3010,005a", "RT Physician Intent Narrative", "Z"),
    ("300a,0006", "RT Plan Date", "X/D"),
    ("300a,0004", "RT Plan Description", "X"),
    ("300a,0002", "RT Plan Label", "D"),
    ("300a,0003", "RT Plan Name", "X"),
    ("300a,0007", "RT Plan Time", "X/D"),
    ("3010,0054", "RT Prescription Label", "D"),
    ("300a,062a", "RT Tolerance Set Label", "D"),
    ("3010,0056", "RT Treatment Approach Label", "X/D"),
    ("3010,003b", "RT Treatment Phase UID", "U"),
    ("0040,4034", "Scheduled Human Performers Sequence", "X"),
    ("0038,001e", "Scheduled Patient Institution Residence", "X"),
    ("0040,0006", "Scheduled Performing Physician's Name", "X"),
    ("0040,000b", "Scheduled Performing Physician Identification Sequence", "X"),
    ("0040,0007", "Scheduled Procedure Step Description", "X"),
    ("0040,0004", "Scheduled Procedure Step End Date", "X"),
    ("0040,0005", "Scheduled Procedure Step End Time", "X"),
    ("0040,4008", "Scheduled Procedure Step Expiration DateTime", "X"),
    ("0040,0009", "Scheduled Procedure Step ID", "X"),
    ("0040,0011", "Scheduled Procedure Step Location", "X"),
    ("0040,4010", "Scheduled Procedure Step Modification DateTime", "X"),
    ("0040,0002", "Scheduled Procedure Step Start Date", "X"),
    ("0040,4005", "Scheduled Procedure Step Start DateTime", "X"),
    ("0040,0003", "Scheduled Procedure Step Start Time", "X"),
    ("0040,0001", "Scheduled Station AE Title", "X"),
    ("0040,4027", "Scheduled Station Geographic Location Code Sequence", "X"),
    ("0040,0010", "Scheduled Station Name", "X"),
    ("0040,4025", "Scheduled Station Name Code Sequence", "X"),
    ("0032,1020", "Scheduled Study Location", "X"),
    ("0032,1021", "Scheduled Study Location AE Title", "X"),
    ("0008,0021", "Series Date", "X/D"),
    ("0008,103e", "Series Description", "X"),
    ("0020,000e", "Series Instance UID", "U"),
    ("0008,0031", "Series Time", "X/D"),
    ("0038,0062", "Service Episode Description", "X"),
    ("0038,0060", "Service Episode ID", "X"),
    ("300a,01b2", "Setup Technique Description", "X"),
    ("300a,01a6", "Shielding Device Description", "X"),
    ("0040,06fa", "Slide Identifier", "X"),
    ("0010,21a0", "Smoking Status", "X"),
    ("0008,0018", "SOP Instance UID", "U"),
    ("3010,0015", "Source Conceptual Volume UID", "U"),
    ("0018,936a", "Source End DateTime", "D"),
    ("0034,0005", "Source Identifier", "D"),
    ("0008,2112", "Source Image Sequence", "X/Z/U*"),
    ("300a,0216", "Source Manufacturer", "X"),
    ("3008,0105", "Source Serial Number", "X/Z"),
    ("0018,9369", "Source Start DateTime", "D"),
    ("0038,0050", "Special Needs", "X"),
    ("0040,050a", "Specimen Accession Number", "X"),
    ("0040,0602", "Specimen Detailed Description", "X"),
    ("0040,0551", "Specimen Identifier", "D"),
    ("0040,0610", "Specimen Preparation Sequence", "Z"),
    ("0040,0600", "Specimen Short Description", "X"),
    ("0040,0554", "Specimen UID", "U"),
    ("0018,9516", "Start Acquisition DateTime", "X/D"),
    ("0008,1010", "Station Name", "X/Z/D"),
    ("0088,0140", "Storage Media File-set UID", "U"),
    ("3006,0008", "Structure Set Date", "Z"),
    ("3006,0006", "Structure Set Description", "X"),
    ("3006,0002", "Structure Set Label", "D"),
    ("3006,0004", "Structure Set Name", "X"),
    ("3006,0009", "Structure Set Time", "X/D"),
    ("0032,4000", "Study Comments", "X"),
    ("0008,0020", "Study Date", "Z"),
    ("0008,1030", "Study Description", "X"),
    ("0020,0010", "Study ID", "Z"),
    ("0032,0012", "Study ID Issuer", "X"),
    ("0020,000d", "Study Instance UID", "U"),
    ("0008,0030", "Study Time", "Z"),
    ("0020,0200", "Synchronization Frame of Reference UID", "U"),
    ("0018,2042", "Target UID", "U"),
    ("0040,a354", "Telephone Number (Trial)", "X"),
    ("0040,db0d", "Template Extension Creator UID", "U"),
    ("0040,db0c", "Template Extension Organization UID", "U"),
    ("4000,4000", "Text Comments", "X"),
    ("2030,0020", "Text String", "X"),
    ("0008,0201", "Timezone Offset From UTC", "X"),
    ("0088,0910", "Topic Author", "X"),
    ("0088,0912", "Topic Keywords", "X"),
    ("0088,0906", "Topic Subject", "X"),
    ("0088,0904", "Topic Title", "X"),
    ("0062,0021", "Tracking UID", "U"),
    ("0008,1195", "Transaction UID", "U"),
    ("0018,5011", "Transducer Identification Sequence", "X"),
    ("3008,0250", "Treatment Date", "X/D"),
    ("300a,00b2", "Treatment Machine Name", "X"),
    ("300a,0608", "Treatment Position Group Label", "D"),
    ("300a,0609", "Treatment Position Group UID", "U"),
    ("300a,0700", "Treatment Session UID", "U"),
    ("3010,0077", "Treatment Site", "D"),
    ("3010,007a", "Treatment Technique Notes", "Z"),
    ("3008,0251", "Treatment Time", "X/D"),
    ("300a,0736", "Treatment Tolerance Violation DateTime", "D"),
    ("300a,0734", "Treatment Tolerance Violation Description", "D"),
    ("0018,100a", "UDI Sequence", "X"),
    ("0040,a124", "UID", "U"),
    ("0018,1009", "Unique Device Identifier", "X"),
    ("3010,0033", "User Content Label", "D"),
    ("3010,0034", "User Content Long Label", "D"),
    ("0040,a352", "Verbal Source (Trial)", "X"),
    ("0040,a358", "Verbal Source Identifier Code Sequence (Trial)", "X"),
    ("0040,a088", "Verifying Observer Identification Code Sequence", "Z"),
    ("0040,a075", "Verifying Observer Name", "D"),
    ("0040,a073", "Verifying Observer Sequence", "D"),
    ("0040,a027", "Verifying Organization", "D"),
    ("0038,4000", "Visit Comments", "X"),
    ("0018,9371", "X-Ray Detector ID", "D"),
    ("0018,9373", "X-Ray Detector Label", "X"),
    ("0018,9367", "X-Ray Source ID", "D"),
    # rows of later editions of the table
    ("0008,0051", "Issuer of Accession Number Sequence", "X"),
    ("0010,0033", "Patient's Birth Date in Alternative Calendar", "X"),
    ("0010,0034", "Patient's Death Date in Alternative Calendar", "X"),
    ("0010,0035", "Patient's Alternative Calendar", "X"),
)

#: Attributes the Retain Patient Characteristics Option (PS3.15 E.3.5) keeps: age, sex, size, weight.
#: Ethnic group, smoking and pregnancy status stay removed: the cases table does not carry them either.
PATIENT_CHARACTERISTICS: frozenset[int] = frozenset({0x00101010, 0x00100040, 0x00101020, 0x00101030})


def resolve_action(code: str, vr: str) -> Action:
    """The single action mmdx applies for a Basic Profile ``code`` on an element of value representation ``vr``.

    The compound codes let the de-identifier choose according to the attribute's type in the object's IOD.
    Without an IOD table mmdx takes the choice that never leaves identifying content and keeps type 2
    attributes present: ``X/Z``, ``Z/D`` and ``X/Z/D`` empty the value; ``X/D`` removes it; ``X/Z/U*`` keeps
    the sequence and remaps every UID inside it (so that references between instances still resolve, and
    anything else in its items goes through the table again); ``C`` (clean) is done by removing, since no
    cleaning rules ship with the Basic Profile.
    """
    if code not in CODES:
        raise ValueError(f"unknown Basic Profile action code {code!r}; expected one of {sorted(CODES)}")
    if code in ("Z", "X/Z", "Z/D", "X/Z/D"):
        return Action.EMPTY
    if code in ("X", "X/D", "C"):
        return Action.REMOVE
    if code == "D":
        return Action.DUMMY
    if code == "K":
        return Action.KEEP
    return Action.REMAP_UID  # "U" and "X/Z/U*"


@dataclass(frozen=True)
class ProfileRule:
    tag: str
    name: str
    code: str


def _parse_tag(text: str) -> tuple[int, int]:
    """``"gggg,eeee"`` (``x`` = any hex digit) -> (value, mask): a tag matches when ``tag & mask == value``."""
    digits = text.replace(",", "").lower()
    if len(digits) != 8 or any(c not in "0123456789abcdefx" for c in digits):
        raise ValueError(f"bad tag {text!r}; expected 'gggg,eeee' in hexadecimal")
    value = int(digits.replace("x", "0"), 16)
    mask = int("".join("0" if c == "x" else "f" for c in digits), 16)
    return value, mask


class ProfileTable:
    """Fast look-up of the Basic Profile rule of a tag (exact tags first, then repeating groups)."""

    def __init__(self, rows: tuple[tuple[str, str, str], ...] = BASIC_PROFILE) -> None:
        self.exact: dict[int, ProfileRule] = {}
        self.masked: list[tuple[int, int, ProfileRule]] = []
        for tag, name, code in rows:
            if code not in CODES:
                raise ValueError(f"{tag} {name}: unknown action code {code!r}")
            value, mask = _parse_tag(tag)
            rule = ProfileRule(tag, name, code)
            if mask == 0xFFFFFFFF:
                if value in self.exact:
                    raise ValueError(f"{tag} appears twice in the profile table")
                self.exact[value] = rule
            else:
                self.masked.append((value, mask, rule))

    def rule(self, tag: int) -> ProfileRule | None:
        """The rule for ``tag`` (an int ``0xggggeeee``), or None when the table does not list it."""
        found = self.exact.get(tag)
        if found is not None:
            return found
        for value, mask, rule in self.masked:
            if tag & mask == value:
                return rule
        return None

    def __len__(self) -> int:
        return len(self.exact) + len(self.masked)


__all__ = [
    "Action",
    "BASIC_PROFILE",
    "CODES",
    "PATIENT_CHARACTERISTICS",
    "ProfileRule",
    "ProfileTable",
    "resolve_action",
]
