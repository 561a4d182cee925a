#!/usr/bin/env python3
"""Generate the medical-billing dataset (train/valid/test JSONL) from codes.tsv.

Standard library only and deterministic: `python3 datasets/medical-billing/generate.py --seed 1234`
rewrites train.jsonl, valid.jsonl and test.jsonl byte for byte. See README.md beside this file for
what the data teaches and how the splits differ.

Phrase tables below mark test-only phrasings with a leading "!": they never appear in train or
valid. A phrase may carry implied procedures after "|" (e.g. "trop bump with ST depressions" tells
the reader an ECG and a troponin were done), and those procedures join the answer when they are in
the primary code's procedure list.
"""

import argparse
import csv
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = Path(__file__).resolve().parents[2]
CODES_TSV = REPO / "../shared/data/medical-billing/codes.tsv"
CODES_TSV_DISPLAY = "../shared/data/medical-billing/codes.tsv"

PROMPT = (
    "Extract medical billing information from this note.\n{note}\n"
    "Respond with JSON matching this schema:\n"
    "- diagnosis: string\n"
    '- urgency: "routine" | "urgent" | "emergency"\n'
    "- procedures: list of strings\n"
    "- billing_codes: list of strings (ICD-10 codes if applicable)"
)

SIZES = {"train": 2400, "valid": 150, "test": 250}
MAX_WORDS = 115
# Token budget for note + answer. The trainer's sequences hold at most 256 tokens; SmolLM2's chat
# template adds its default system prompt (21 tokens), the fixed prompt text is 65 and the chat
# framing about 8, which leaves about 162. `est_tokens` rarely undercounts SmolLM2's BPE on this
# kind of text (it overcounts by ~25% on average); the records' real lengths were checked with
# SmolLM2's tokenizer (see README.md).
NOTE_ANSWER_TOKENS = 160
PIECE = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d| ?[^\s\w]+|\s+(?!\S)|\s+""")


def est_tokens(text):
    """Upper estimate of a GPT-2-style BPE token count (digits split, as SmolLM2 does)."""
    n = 0
    for piece in PIECE.findall(text):
        core = piece.strip()
        if not core or core[0].isdigit():
            n += 1
        elif core[0].isalpha():
            n += 1 + max(0, len(core) - 4) // 2 + (1 if core.isupper() and len(core) > 3 else 0)
        else:
            n += len(core)
    return n

TRAIN_STYLES = [
    "ed_triage", "soap", "discharge_summary", "telephone", "consult",
    "shorthand", "hp_narrative", "progress_note", "clinic_visit", "encounter_form",
]
HELDOUT_STYLES = ["sbar_handoff", "referral_letter"]
# Added after the test split was fixed; train and valid only (see DX_SYNONYMS_MORE).
MORE_STYLES = ["nursing_focus", "ipass_handoff", "nursing_narrative", "transfer_note"]

# --------------------------------------------------------------------------------------------
# Phrase tables. "!" = test-only phrasing. "|Proc|Proc" = procedures the phrase implies.
# --------------------------------------------------------------------------------------------

# Extra ways to name each primary diagnosis (codes.tsv's jargon and description are used too).
DX_SYNONYMS = {
    "I21.4": ["non-ST-elevation myocardial infarction", "NSTE-MI", "type 1 NSTEMI",
              "trop bump with ST depressions|Electrocardiogram|Troponin measurement",
              "MI without ST elevation", "!non-ST segment elevation MI",
              "!troponin-positive ACS without ST elevation|Troponin measurement"],
    "I21.3": ["ST-elevation myocardial infarction", "STEMI activation", "code STEMI",
              "MI with ST elevation", "!ST-segment elevation MI",
              "!ST elevations on 12-lead c/w STEMI|Electrocardiogram"],
    "I21.9": ["acute myocardial infarction", "MI, acute", "myocardial infarction (acute)",
              "!acute myocardial infarct", "!acute heart attack"],
    "I50.9": ["heart failure", "CHF exacerbation", "decompensated heart failure", "ADHF",
              "volume overload from heart failure", "!cardiac decompensation",
              "!fluid overload from CHF"],
    "I11.0": ["heart failure due to hypertension", "hypertensive heart disease with heart failure",
              "HF secondary to longstanding HTN", "hypertensive cardiomyopathy with CHF",
              "!CHF from uncontrolled high blood pressure", "!hypertensive HF"],
    "I48.91": ["atrial fibrillation", "afib with RVR", "AF w/ RVR", "atrial fib",
               "irregularly irregular rhythm c/w AF|Electrocardiogram",
               "!AFib w/ rapid ventricular response", "!A. fib"],
    "I48.0": ["paroxysmal atrial fibrillation", "paroxysmal a-fib", "intermittent AF episodes",
              "PAF, now back in sinus", "!self-terminating AF episodes", "!paroxysmal afib"],
    "I10": ["hypertension", "essential hypertension", "elevated BP", "primary hypertension",
            "uncontrolled HTN", "!HBP", "!high BP"],
    "R07.9": ["chest pain", "chest pain, unspecified", "chest pain of unclear etiology",
              "pain in chest", "!pain in the chest", "!chest pain, etiology unclear"],
    "R55": ["syncopal episode", "syncope and collapse", "fainted", "vasovagal syncope",
            "collapse with brief LOC", "!brief loss of consciousness", "!blacked out"],
    "I26.99": ["pulmonary embolism", "segmental PE", "pulmonary emboli", "bilateral PEs",
               "PE without RV strain", "!clot in the lungs", "!PE (no RV strain)"],
    "I82.401": ["right lower extremity DVT", "DVT of the right leg", "R leg deep vein thrombosis",
                "acute DVT R leg", "!right-sided leg DVT", "!clot in the right leg"],
    "I63.9": ["cerebral infarction", "acute ischemic stroke", "AIS", "brain infarct",
              "stroke w/ L sided weakness", "!cerebral infarct", "!brain attack"],
    "G45.9": ["transient ischemic attack", "TIA, symptoms resolved", "transient neuro deficit c/w TIA",
              "!transient cerebral ischemia", "!TIA (resolved)"],
    "E11.9": ["diabetes mellitus type 2", "type II DM", "type 2 DM, well controlled", "DM type II",
              "!adult-onset diabetes", "!T2D"],
    "E11.65": ["type 2 diabetes with hyperglycemia", "poorly controlled DM2", "DM2 with BG in 400s",
               "hyperglycemia in known T2DM", "!T2DM, glucose poorly controlled",
               "!type 2 DM w/ high sugars"],
    "E10.10": ["T1DM in DKA", "type 1 diabetic with ketoacidosis", "DKA, T1DM", "ketoacidosis",
               "!type 1 DM w/ ketoacidosis", "!diabetic keto-acidosis"],
    "E03.9": ["hypothyroidism", "underactive thyroid", "hypothyroid state",
              "!thyroid hypofunction"],
    "E86.0": ["dehydration", "dry, poor PO intake", "volume depleted", "!clinically dehydrated",
              "!fluid deficit"],
    "D64.9": ["anemia, unspecified", "anaemia", "low hemoglobin", "!low blood count", "!anemic"],
    "J44.1": ["acute exacerbation of COPD", "COPD flare", "COPD w/ acute exac",
              "!COPD exac", "!exacerbation of chronic obstructive pulmonary disease"],
    "J45.909": ["asthma, well controlled", "asthma without exacerbation", "RAD",
                "!asthmatic, no current flare"],
    "J18.9": ["community-acquired pneumonia", "pneumonia, organism unspecified", "RLL pneumonia",
              "!chest infection", "!lung infection"],
    "J06.9": ["upper respiratory infection", "viral URI", "head cold", "acute URI",
              "!upper respiratory tract infection", "!viral upper resp infection"],
    "J40": ["bronchitis NOS", "chest cold", "bronchitis, unspecified", "!bronchial infection"],
    "J96.01": ["acute hypoxemic respiratory failure", "acute resp failure w/ hypoxia",
               "hypoxic resp failure", "!acute respiratory failure with hypoxemia"],
    "R06.02": ["shortness of breath", "short of breath", "breathlessness",
               "!difficulty breathing", "!can't catch breath"],
    "A41.9": ["sepsis, source unclear", "septicemia", "sepsis w/o shock", "!septicaemia",
              "!sepsis syndrome"],
    "N39.0": ["urinary tract infection", "UTI sx with positive UA|Urinalysis", "lower UTI",
              "!urine infection"],
    "N17.9": ["acute kidney injury", "acute kidney failure", "AKI on labs",
              "!acute renal injury"],
    "N20.0": ["renal calculus", "renal stone", "kidney stones", "R renal stone",
              "!renal calculi", "!stone in the kidney"],
    "K35.80": ["appendicitis", "acute appy", "appendicitis, non-perforated", "!inflamed appendix"],
    "K80.20": ["gall stones", "cholelithiasis w/o cholecystitis", "stones in GB",
               "!stones in the gallbladder"],
    "K21.9": ["gastroesophageal reflux", "reflux disease", "heartburn c/w GERD",
              "!gastro-oesophageal reflux"],
    "K92.2": ["gastrointestinal bleeding", "GI hemorrhage", "bleeding from the GI tract",
              "!gastrointestinal haemorrhage", "!GI blood loss"],
    "K50.90": ["Crohn disease", "Crohn's disease", "Crohns", "!regional enteritis"],
    "K59.00": ["constipated", "constipation, unspecified", "infrequent hard stools",
               "!no BM x5 days, hard stools"],
    "L03.115": ["cellulitis of the right lower leg", "R leg cellulitis",
                "cellulitis right lower extremity", "!skin infection of the right leg"],
    "S72.001A": ["right hip fracture", "fx of R femoral neck", "R FNF",
                 "!broken right hip"],
    "M54.5": ["low back pain", "lower back pain", "lumbar pain", "!pain in lower back"],
    "M17.11": ["DJD of the right knee", "OA R knee", "degenerative arthritis right knee",
               "!right knee arthritis (primary OA)"],
    "G43.909": ["migraine headache", "migrainous headache", "migraine, not intractable",
                "!migraine attack", "!migraine-type headache"],
    "F32.9": ["major depressive disorder", "major depression", "depressive disorder",
              "!major depressive episode", "!clinical depression"],
    "F41.1": ["generalized anxiety disorder", "generalised anxiety", "chronic worry c/w GAD",
              "!anxiety disorder, generalized"],
    "R50.9": ["fever of unknown source", "fevers", "pyrexia", "!febrile illness",
              "!high temperature"],
    "R13.10": ["difficulty swallowing", "swallowing difficulty", "food getting stuck",
               "!problems swallowing"],
}

# A second round of train-only phrasings in other registers (lay words, British spelling, formal and
# chart shorthand), added after stage 3 showed the primary diagnosis on unseen wordings capping the
# test score. They join train and valid only: the test split draws from the tables above alone, so it
# stays byte for byte the set every earlier adapter was measured on.
DX_SYNONYMS_MORE = {
    "I21.4": ["NSTEMI (type 1)", "non-ST elevation heart attack", "subendocardial MI", "N-STEMI"],
    "I21.3": ["STEMI, inferior leads", "ST elevation heart attack", "acute STEMI", "ST-elevation MI"],
    "I21.9": ["heart attack, acute", "acute coronary occlusion with infarction", "myocardial infarct (acute)",
              "recent heart attack"],
    "I50.9": ["congestive cardiac failure", "CCF", "failing heart with fluid overload", "HF exacerbation"],
    "I11.0": ["heart failure from hypertension", "hypertensive heart failure (HHD)", "HTN heart disease w/ HF",
              "HF due to long-standing high blood pressure"],
    "I48.91": ["atrial fibrillation, rate uncontrolled", "AF, new onset", "fast AF", "afib"],
    "I48.0": ["paroxysmal AFib", "intermittent atrial fibrillation", "PAF, self-limited",
              "episodic atrial fibrillation"],
    "I10": ["hypertension, essential", "hypertension, longstanding", "HTN, not at goal",
            "hypertensive, no end-organ damage"],
    "R07.9": ["chest discomfort NOS", "CP, cause not yet clear", "chest pain NOS, workup pending",
              "non-specific chest pain"],
    "R55": ["syncope, likely vasovagal", "fainting spell", "collapse (syncopal)", "syncope NOS"],
    "I26.99": ["PE, subsegmental", "pulmonary thromboembolism", "lung clot (PE)", "acute PE, no RV strain"],
    "I82.401": ["right leg deep vein thrombosis", "DVT (R lower limb)", "deep venous thrombosis, right leg",
                "RLE DVT, acute"],
    "I63.9": ["ischaemic stroke", "acute CVA", "stroke (ischemic)", "new infarct on MRI brain"],
    "G45.9": ["TIA, now back to baseline", "mini stroke", "transient ischaemic attack", "TIA sx, resolved"],
    "E11.9": ["non-insulin-dependent diabetes", "diabetes (type 2), stable", "T2 diabetes, A1c at goal",
              "type 2 diabetic"],
    "E11.65": ["type 2 diabetes, hyperglycaemic", "T2DM with high glucose", "uncontrolled type 2 diabetes",
               "DM2, sugars in the 300s"],
    "E10.10": ["diabetic ketoacidosis (type 1)", "DKA in type 1 diabetic", "type 1 DM in ketoacidosis",
               "T1D with DKA"],
    "E03.9": ["low thyroid function", "hypothyroid, on replacement", "underactive thyroid gland",
              "primary hypothyroidism"],
    "E86.0": ["dry and volume down", "dehydration from poor intake", "dehydrated, poor oral intake", "volume-depleted"],
    "D64.9": ["anemia NOS", "low Hb", "anaemic", "anemia, cause TBD"],
    "J44.1": ["COPD exacerbation, acute", "flare of COPD", "AECOPD (acute exacerbation)", "COPD, acutely worse"],
    "J45.909": ["asthma, stable on inhaler", "asthma NOS", "asthmatic, stable", "reactive airways, no flare"],
    "J18.9": ["pneumonia", "CAP, RML", "PNA on CXR", "pneumonia, unspecified"],
    "J06.9": ["common cold", "URTI", "viral upper respiratory illness", "URI, likely viral"],
    "J40": ["bronchitis", "tracheobronchitis", "bronchitic cough", "bronchitis (not specified)"],
    "J96.01": ["hypoxaemic respiratory failure", "resp failure, hypoxic", "type 1 respiratory failure",
               "acute hypoxic resp failure"],
    "R06.02": ["dyspnoea", "SOB, cause unclear", "breathless", "short-winded"],
    "A41.9": ["sepsis, organism unknown", "septic, no source yet", "blood infection (sepsis)", "sepsis NOS"],
    "N39.0": ["UTI, uncomplicated", "bladder infection", "UTI, UA positive", "urinary infection"],
    "N17.9": ["AKI, prerenal", "acute renal failure", "kidney injury, acute", "ARF on BMP"],
    "N20.0": ["kidney stone", "nephrolithiasis, R", "renal colic from a stone", "stone in the R kidney"],
    "K35.80": ["acute appendicitis", "appendicitis without perforation", "uncomplicated appendicitis",
               "appendicitis, early"],
    "K80.20": ["gallstones", "symptomatic cholelithiasis", "GB stones, no cholecystitis", "biliary colic from stones"],
    "K21.9": ["GERD", "acid reflux", "gastro-esophageal reflux", "reflux oesophageal sx"],
    "K92.2": ["GI bleed", "GIB", "GI haemorrhage", "bleeding per rectum, source unclear"],
    "K50.90": ["Crohn disease, uncomplicated", "Crohn's, quiescent", "CD (Crohn disease)",
               "inflammatory bowel disease, Crohn type"],
    "K59.00": ["constipation", "chronic constipation", "hard infrequent stools", "constipation NOS"],
    "L03.115": ["right leg cellulitis", "cellulitis, R lower limb", "RLE cellulitis", "soft tissue infection R shin"],
    "S72.001A": ["right femoral neck fracture", "fractured R hip", "R NOF fracture", "R hip fx after fall"],
    "M54.5": ["LBP", "lumbago", "mechanical low back pain", "lumbar back pain"],
    "M17.11": ["right knee osteoarthritis", "R knee OA", "osteoarthritis of R knee", "worn-out right knee (OA)"],
    "G43.909": ["migraine", "migraine, episodic", "migraine HA", "migraine headaches"],
    "F32.9": ["depression", "MDD", "depressive illness", "MDD, single episode"],
    "F41.1": ["GAD", "anxiety", "generalized anxiety", "anxiety disorder (GAD)"],
    "R50.9": ["fever", "febrile", "fever NOS", "temps to 39"],
    "R13.10": ["dysphagia", "trouble swallowing", "dysphagia NOS", "swallowing problems"],
}

# Presenting symptoms (never the coded label by themselves).
SYMPTOMS = {
    "I21.4": ["substernal pressure x3h", "chest pressure radiating to L arm", "diaphoresis and nausea"],
    "I21.3": ["crushing chest pain x1h", "chest pain, diaphoretic", "pressure-like CP with nausea"],
    "I21.9": ["chest pain and diaphoresis", "epigastric pressure, nausea", "jaw pain on exertion"],
    "I50.9": ["worsening DOE and orthopnea", "leg swelling, 3 pillow orthopnea", "wt gain 8 lb, SOB"],
    "I11.0": ["increasing SOB, LE edema", "orthopnea and PND", "dyspnea on exertion, swelling"],
    "I48.91": ["palpitations", "racing heart since AM", "palpitations and lightheadedness"],
    "I48.0": ["intermittent palpitations", "episodes of fluttering", "palps lasting minutes"],
    "I10": ["occasional headaches", "BP follow-up, no complaints", "here for BP check"],
    "R07.9": ["left sided chest pain", "sharp CP since last night", "chest discomfort at rest"],
    "R55": ["passed out at church", "LOC while standing", "collapsed at home"],
    "I26.99": ["pleuritic CP and SOB", "sudden dyspnea", "tachycardic, hypoxic"],
    "I82.401": ["R calf swelling and pain", "swollen right leg x3d", "R leg pain/erythema"],
    "I63.9": ["L facial droop, slurred speech", "R arm weakness", "aphasia, LKW 2h ago"],
    "G45.9": ["transient L arm numbness", "15 min of slurred speech, resolved", "brief vision loss"],
    "E11.9": ["routine diabetes f/u", "diabetes follow-up, feels well", "here for diabetes check"],
    "E11.65": ["polyuria, polydipsia", "glucose 380 at home", "fatigue, high sugars"],
    "E10.10": ["N/V, abd pain", "Kussmaul breathing", "polyuria, vomiting, fruity breath"],
    "E03.9": ["fatigue, cold intolerance", "weight gain, dry skin", "constipation and fatigue"],
    "E86.0": ["vomiting/diarrhea x2d", "poor PO intake", "dizzy, dry mucosa"],
    "D64.9": ["fatigue", "pallor, DOE", "exertional fatigue"],
    "J44.1": ["increased sputum, wheeze", "worsening SOB, productive cough", "wheezing x3d"],
    "J45.909": ["rare wheeze", "occasional albuterol use", "mild wheeze with exercise"],
    "J18.9": ["productive cough, fever", "cough, fever, pleuritic pain", "fever, crackles RLL"],
    "J06.9": ["sore throat, rhinorrhea", "nasal congestion, cough x4d", "runny nose, mild cough"],
    "J40": ["cough x10d", "productive cough, no fever", "hacking cough"],
    "J96.01": ["severe dyspnea", "hypoxia on RA", "respiratory distress"],
    "R06.02": ["dyspnea x2d", "winded walking upstairs", "SOB with exertion"],
    "A41.9": ["fever, rigors, confusion", "hypotension, fever", "lethargy, fever"],
    "N39.0": ["dysuria, frequency", "burning w/ urination", "urgency and suprapubic pain"],
    "N17.9": ["decreased UOP", "N/V, low urine output", "fatigue, oliguria"],
    "N20.0": ["R flank pain, colicky", "flank pain, hematuria", "severe L flank pain"],
    "K35.80": ["RLQ pain, anorexia", "periumbilical pain migrating to RLQ", "RLQ tenderness, N/V"],
    "K80.20": ["RUQ pain after fatty meals", "postprandial RUQ discomfort", "intermittent RUQ pain"],
    "K21.9": ["burning epigastric pain after meals", "heartburn, regurgitation", "sour taste at night"],
    "K92.2": ["dark stools, lightheaded", "blood per rectum", "weakness, dark stool"],
    "K50.90": ["diarrhea, cramping", "abd pain, loose stools", "wt loss, diarrhea"],
    "K59.00": ["no BM in 4 days", "hard stools, straining", "bloating, infrequent BMs"],
    "L03.115": ["R shin redness, warmth", "spreading erythema R leg", "R leg red/swollen/warm"],
    "S72.001A": ["fall from standing, R hip pain", "unable to bear weight after fall", "R leg shortened, ext rotated"],
    "M54.5": ["low back ache x2wk", "back pain lifting boxes", "LBP no radiation"],
    "M17.11": ["R knee pain, stiffness", "R knee pain worse w/ stairs", "knee crepitus, pain"],
    "G43.909": ["throbbing unilateral HA", "HA w/ photophobia", "pounding headache, nausea"],
    "F32.9": ["low mood, anhedonia", "poor sleep, sad mood", "low energy, hopelessness"],
    "F41.1": ["constant worry, restless", "excessive worry, poor sleep", "tense, can't relax"],
    "R50.9": ["fevers to 102", "chills and fever", "febrile x3 days"],
    "R13.10": ["food sticking in throat", "trouble getting pills down", "solid food dysphagia"],
}

AGE_RANGE = {
    "E10.10": (18, 40), "S72.001A": (66, 96), "K35.80": (18, 45), "J06.9": (18, 60),
    "M17.11": (50, 85), "G43.909": (18, 50), "J45.909": (18, 60), "K50.90": (19, 50),
}

# Procedures: kind ("test" or "tx") and phrasings. "!" = test-only.
PROCS = {
    "Electrocardiogram": ("test", ["ECG", "EKG", "12-lead", "12-lead ECG", "electrocardiogram",
                                   "serial ECGs", "!ECG tracing", "!12 lead EKG tracing"]),
    "Troponin measurement": ("test", ["trop", "troponin", "hs-troponin", "serial troponins",
                                      "troponin I", "!cardiac biomarkers", "!hsTnT"]),
    "Cardiac catheterization": ("proc", ["cath", "cardiac cath", "LHC", "left heart cath",
                                       "coronary angiography", "!coronary angiogram", "!cath lab angio"]),
    "Percutaneous coronary intervention": ("proc", ["PCI", "stent placement", "DES to LAD", "primary PCI",
                                                  "angioplasty", "!PTCA", "!coronary stenting"]),
    "Echocardiogram": ("test", ["echo", "TTE", "transthoracic echo", "echocardiogram",
                                "!2D echo", "!cardiac ultrasound"]),
    "BNP measurement": ("test", ["BNP", "NT-proBNP", "pro-BNP", "!natriuretic peptide"]),
    "IV diuresis": ("tx", ["IV Lasix", "IV furosemide", "IV bumex", "IV diuresis",
                           "!IV loop diuretic", "!furosemide 40 mg IV"]),
    "Rate control": ("tx", ["rate control", "dilt drip", "metoprolol for rate control",
                            "diltiazem for rate", "!IV diltiazem for HR"]),
    "Anticoagulation": ("tx", ["anticoagulation", "heparin gtt", "apixaban", "heparin drip",
                               "Eliquis", "rivaroxaban", "!enoxaparin", "!Lovenox"]),
    "Holter monitoring": ("test", ["Holter", "24h Holter", "Holter monitor", "!48-hour Holter",
                                   "!wearable rhythm monitor"]),
    "Blood pressure monitoring": ("test", ["home BP monitoring", "BP log", "ambulatory BP monitoring",
                                           "BP checks", "!24h ABPM", "!home blood pressure diary"]),
    "Orthostatic vitals": ("test", ["orthostatics", "orthostatic vitals", "orthostatic BP",
                                    "!lying/standing BPs"]),
    "CT pulmonary angiography": ("test", ["CTPA", "CTA chest", "CT PE protocol", "CT angiogram of chest",
                                          "!PE-protocol CT"]),
    "Venous duplex ultrasound": ("test", ["venous duplex", "LE doppler", "duplex US RLE", "DVT US",
                                          "!compression ultrasound"]),
    "CT head": ("test", ["CT head", "head CT", "non-con CT head", "CTH", "!CT brain"]),
    "Thrombolysis": ("tx", ["tPA", "alteplase", "thrombolytics", "TNK", "!IV lytics"]),
    "Carotid ultrasound": ("test", ["carotid US", "carotid doppler", "carotid duplex",
                                    "!carotid dopplers"]),
    "Hemoglobin A1c measurement": ("test", ["A1c", "HbA1c", "hemoglobin A1c", "!glycated hemoglobin"]),
    "Insulin titration": ("tx", ["insulin titration", "uptitration of glargine", "basal insulin increase",
                                 "insulin dose adjustment", "!Lantus increase"]),
    "IV insulin infusion": ("tx", ["insulin drip", "insulin gtt", "IV insulin", "!insulin infusion"]),
    "IV fluids": ("tx", ["IVF", "NS bolus", "IV fluids", "LR bolus", "fluid resuscitation",
                         "!2L NS", "!IV hydration"]),
    "Arterial blood gas": ("test", ["ABG", "arterial blood gas", "!art gas"]),
    "TSH measurement": ("test", ["TSH", "thyroid stimulating hormone", "!TSH level"]),
    "Complete blood count": ("test", ["CBC", "complete blood count", "CBC w/ diff", "!hemogram"]),
    "Nebulizer treatment": ("tx", ["nebs", "DuoNeb", "albuterol neb", "nebulized bronchodilators",
                                   "!breathing treatment"]),
    "Chest X-ray": ("test", ["CXR", "chest x-ray", "chest film", "PA/lat chest", "!chest radiograph"]),
    "Systemic corticosteroids": ("tx", ["prednisone", "solu-medrol", "IV methylpred", "systemic steroids",
                                        "!pred burst"]),
    "Spirometry": ("test", ["spirometry", "PFTs", "pulmonary function testing", "!FEV1/FVC testing"]),
    "IV antibiotics": ("tx", ["IV abx", "IV ceftriaxone", "IV vanc/zosyn", "IV antibiotics",
                              "!IV cefazolin", "!IV unasyn"]),
    "Physical examination": ("test", ["physical exam", "exam", "physical examination",
                                      "!full exam"]),
    "Mechanical ventilation": ("proc", ["intubation", "mechanical ventilation", "vent",
                                      "!ventilator support"]),
    "Supplemental oxygen": ("tx", ["O2 via NC", "supplemental O2", "nonrebreather", "HFNC",
                                   "!oxygen by nasal cannula"]),
    "Pulse oximetry": ("test", ["pulse ox", "continuous SpO2 monitoring", "pulse oximetry",
                                "!sat probe monitoring"]),
    "Blood cultures": ("test", ["BCx x2", "blood cx", "blood cultures", "!2 sets of cultures"]),
    "Lactate measurement": ("test", ["lactate", "lactic acid", "!serum lactate"]),
    "Urinalysis": ("test", ["UA", "urinalysis", "UA w/ micro", "urine dipstick", "!urine dip"]),
    "Urine culture": ("test", ["urine cx", "UCx", "urine culture", "!urine sent for culture"]),
    "Basic metabolic panel": ("test", ["BMP", "chem 7", "basic metabolic panel", "!Chem7 panel"]),
    "Renal ultrasound": ("test", ["renal US", "renal ultrasound", "kidney US", "!RUS"]),
    "CT abdomen and pelvis": ("test", ["CT A/P", "CT abd/pelvis", "CT abdomen/pelvis",
                                       "stone protocol CT", "!CTAP"]),
    "Appendectomy": ("proc", ["appendectomy", "lap appy", "laparoscopic appendectomy",
                            "!appendix removal"]),
    "Abdominal ultrasound": ("test", ["RUQ US", "abdominal ultrasound", "RUQ ultrasound", "abd US",
                                      "!gallbladder sono"]),
    "Upper endoscopy": ("proc", ["EGD", "upper endoscopy", "upper GI scope", "!esophagogastroduodenoscopy"]),
    "Blood transfusion": ("tx", ["transfusion of 2u PRBC", "blood transfusion", "1 unit pRBCs",
                                 "!packed red cells"]),
    "Colonoscopy": ("proc", ["colonoscopy", "colonoscopy w/ biopsies", "!ileocolonoscopy"]),
    "Abdominal X-ray": ("test", ["KUB", "abdominal x-ray", "AXR", "abd film", "!plain film of abdomen"]),
    "Wound culture": ("test", ["wound cx", "wound culture", "!swab of drainage for culture"]),
    "Hip X-ray": ("test", ["hip XR", "x-ray R hip", "hip films", "!pelvis/hip radiographs"]),
    "Open reduction internal fixation": ("proc", ["ORIF", "open reduction internal fixation",
                                                "!operative fixation"]),
    "Lumbar spine X-ray": ("test", ["L-spine XR", "lumbar x-rays", "LS spine films",
                                    "!lumbar radiographs"]),
    "Physical therapy": ("referral", ["physical therapy", "PT", "outpatient PT", "!physio"]),
    "Knee X-ray": ("test", ["knee XR", "R knee x-ray", "knee films", "!knee radiographs"]),
    "Intra-articular steroid injection": ("tx", ["steroid injection", "kenalog knee injection",
                                                 "intra-articular corticosteroid injection",
                                                 "cortisone shot", "!IA triamcinolone"]),
    "Neurological examination": ("test", ["neuro exam", "neurologic exam", "full neuro exam",
                                          "!nonfocal neurological exam"]),
    "Depression screening (PHQ-9)": ("test", ["PHQ-9", "PHQ9", "depression screening",
                                              "!PHQ-9 questionnaire"]),
    "Anxiety screening (GAD-7)": ("test", ["GAD-7", "GAD7", "anxiety screening",
                                           "!GAD-7 questionnaire"]),
    "Barium swallow study": ("test", ["barium swallow", "esophagram", "barium esophagram",
                                      "!swallow study with barium"]),
}

# Result fragments for tests (optional). Generic ones are used where none is listed.
RESULTS = {
    "Electrocardiogram": ["sinus rhythm", "no acute changes", "sinus tach"],
    "Troponin measurement": ["0.02", "neg", "pending"],
    "Echocardiogram": ["EF 35%", "EF 45%", "LVH"],
    "BNP measurement": ["1240", "880", "elevated"],
    "Hemoglobin A1c measurement": ["7.1%", "9.8%", "11.2%"],
    "TSH measurement": ["12.4", "elevated", "8.9"],
    "Complete blood count": ["Hgb 8.2", "WBC 14.1", "Hgb 9.0"],
    "Lactate measurement": ["3.4", "2.1", "4.6"],
    "Arterial blood gas": ["pH 7.12", "pH 7.31/pCO2 48", "pO2 55"],
    "Chest X-ray": ["clear", "RLL infiltrate", "hyperinflation"],
    "Urinalysis": ["+LE/nitrite", "large blood", "cloudy"],
}
ECG_BY_CODE = {
    "I21.4": ["ST depressions V4-V6", "TWI laterally"], "I21.3": ["ST elevations II/III/aVF", "STE V1-V4"],
    "I48.91": ["AF w/ RVR", "irregularly irregular"], "I48.0": ["NSR now", "sinus rhythm"],
}
RESULTS["Physical examination"] = ["pharynx erythematous, lungs clear", "TMs clear, boggy turbinates",
                                  "clear rhinorrhea, no LAD"]
RESULTS["Neurological examination"] = ["nonfocal", "CN II-XII intact, 5/5 strength", "no deficits"]
GENERIC_RESULTS = ["unremarkable", "nl", "abnormal", "pending", "reviewed"]

TEST_DONE = ["{p} done", "{p} obtained", "got {p}", "{p}: {r}", "{p} -> {r}", "{p} {r}",
             "{p} checked", "{p} result {r}", "!{p} resulted {r}", "!{p} back: {r}"]
TEST_ORDERED = ["{p} ordered", "will obtain {p}", "plan {p}", "{p} pending", "sent {p}",
                "!{p} requested", "!awaiting {p}"]
TX_DONE = ["started {p}", "{p} started", "given {p}", "{p} initiated", "on {p} now",
           "!received {p}", "!treated with {p}"]
TX_ORDERED = ["plan {p}", "{p} ordered", "will start {p}", "continue {p}", "!scheduled for {p}",
              "!{p} arranged"]
PROC_DONE = ["s/p {p}", "underwent {p}", "{p} performed", "{p} done", "{p} today",
             "!{p} completed", "!went for {p}"]
PROC_ORDERED = ["plan {p}", "{p} scheduled", "consent for {p}", "booked for {p}", "will need {p}",
                "!{p} planned", "!to undergo {p}"]
REF_DONE = ["referred to {p}", "{p} referral placed", "start {p}", "{p} ordered",
            "!{p} set up", "!referral for {p}"]
PROC_NEGATED = ["{p} deferred", "pt declined {p}", "{p} not indicated", "holding off on {p}",
                "no {p} at this time", "!{p} not pursued", "!decided against {p}"]

# Secondary codes: positive (code it) and negative (do not code it) phrasings.
SMOKER_POS = ["smoker", "1 ppd", "2 packs/day", "cigarette smoker", "smokes 1/2 ppd",
              "current smoker, 30 pack-yr", "active smoker", "smokes a pack a day",
              "smokes ~10 cigarettes/day", "still smoking cigarettes", "current every day smoker",
              "+tobacco (cigarettes)", "smokes half a pack daily", "smoking 1 ppd x20 yrs",
              "!currently smokes cigs", "!smokes 15 cigs daily", "!pack-a-day smoker"]
TOBACCO_USE_POS = ["tobacco use", "chews tobacco", "uses smokeless tobacco", "dips snuff daily",
                   "chewing tobacco user", "uses snuff", "chews dip daily", "!uses chewing tobacco",
                   "!smokeless tobacco user"]
TOBACCO_NEG = ["never smoker", "denies tobacco", "nonsmoker", "no tobacco use",
               "former smoker, quit 10 y ago", "quit smoking in 2015", "ex-smoker",
               "remote 20 pack-yr hx, quit", "father was a heavy smoker", "wife smokes, pt does not",
               "denies smoking", "never smoked", "lifelong nonsmoker", "former smoker",
               "no smoking hx", "quit tobacco 5 yrs ago", "tobacco: never", "does not smoke or chew",
               "!quit cigarettes years ago", "!never used tobacco", "!stopped smoking after an MI"]
NONCOMPLIANCE_POS = ["non-compliance with meds", "nonadherent to regimen", "ran out of meds 2 wk ago",
                     "has not been taking {his} meds", "stopped taking meds on own",
                     "admits missing doses", "self-discontinued meds", "poor med adherence",
                     "medication noncompliance", "missed several doses this wk",
                     "not taking {his} meds regularly", "stopped {his} meds d/t cost",
                     "hasn't filled {his} prescriptions", "forgets meds frequently",
                     "!skips pills most days", "!not taking meds as prescribed"]
NONCOMPLIANCE_NEG = ["compliant with meds", "adherent to regimen", "takes meds as prescribed",
                     "reports good adherence", "metformin stopped by PCP for GI upset",
                     "no missed doses", "takes all meds daily", "denies missing doses",
                     "good compliance", "uses pillbox, no missed doses",
                     "adherent w/ meds per pill count", "meds reviewed, taking as directed",
                     "!never misses doses", "!med adherence good"]
HLD_POS = ["HLD", "high cholesterol", "hyperlipidemia", "dyslipidemia", "HLD on atorvastatin",
           "elevated lipids", "hypercholesterolemia", "elevated LDL", "high lipids",
           "hyperlipidemia on statin", "!hyperlipidaemia", "!lipids high, on statin"]
HLD_NEG = ["no HLD", "lipids normal", "mother w/ high cholesterol", "FHx of hyperlipidemia",
           "denies high cholesterol", "cholesterol WNL", "no hx of hyperlipidemia", "normal lipids",
           "brother w/ HLD", "LDL normal off meds", "!cholesterol normal last year"]
OBESITY_POS = ["morbid obesity", "BMI over 40", "BMI {bmi}", "severe obesity, BMI {bmi}",
               "class III obesity", "morbidly obese", "BMI {bmi}, morbidly obese", "obese class III",
               "severe obesity", "BMI {bmi} (class 3)", "!BMI {bmi} (morbid obesity)",
               "!obesity class 3"]
OBESITY_NEG = ["BMI {lowbmi}", "overweight, BMI {lowbmi}", "obese, BMI {lowbmi}",
               "s/p bariatric surgery, BMI now {lowbmi}", "normal weight", "BMI {lowbmi}, overweight",
               "thin build, BMI {lowbmi}", "!BMI {lowbmi}, not obese"]

SECONDARY_ORDER = ["F17.210", "Z72.0", "Z91.14", "E78.5", "E66.01"]

# Past history that is never coded in this dataset; "x" lists primary codes it must not accompany
# (same family, or one that would change the primary code, e.g. HTN + heart failure is I11.0).
PMH = [
    ("HTN", {"I10", "I50.9", "I11.0"}), ("T2DM", {"E11.9", "E11.65", "E10.10"}),
    ("DM2 on metformin", {"E11.9", "E11.65", "E10.10"}), ("hypothyroidism", {"E03.9"}),
    ("GERD", {"K21.9", "R13.10"}), ("asthma", {"J45.909", "J44.1"}), ("COPD", {"J44.1", "J45.909"}),
    ("osteoarthritis", {"M17.11"}), ("depression", {"F32.9", "F41.1"}), ("anxiety", {"F41.1", "F32.9"}),
    ("CAD s/p stent 2016", {"I21.4", "I21.3", "I21.9", "R07.9"}),
    ("prior MI", {"I21.4", "I21.3", "I21.9", "R07.9"}),
    ("remote DVT", {"I82.401", "I26.99"}), ("prior stroke", {"I63.9", "G45.9"}),
    ("CKD 3", {"N17.9"}), ("gout", set()), ("BPH", set()), ("osteoporosis", set()),
    ("glaucoma", set()), ("s/p appendectomy", {"K35.80"}), ("s/p cholecystectomy", {"K80.20"}),
    ("breast ca in remission", set()), ("prostate ca", set()), ("migraines", {"G43.909"}),
    ("IBS", {"K59.00", "K50.90"}), ("OSA on CPAP", set()), ("hx kidney stones", {"N20.0"}),
    ("psoriasis", set()), ("hep C, treated", set()), ("hx AF", {"I48.91", "I48.0"}),
    ("anemia", {"D64.9", "K92.2"}), ("seasonal allergies", set()), ("cataracts", set()),
]
MEDS = ["lisinopril", "amlodipine", "metformin", "levothyroxine", "omeprazole", "sertraline",
        "albuterol PRN", "tamsulosin", "allopurinol", "gabapentin", "metoprolol", "losartan",
        "HCTZ", "vitamin D", "ASA 81", "APAP PRN", "fluticasone", "cetirizine", "escitalopram",
        "pantoprazole", "montelukast", "finasteride", "melatonin"]
MED_EXCLUDE = {  # meds that would contradict or hint a code that is not there
    "E03.9": {"levothyroxine"}, "K21.9": {"omeprazole", "pantoprazole"},
    "I10": set(), "F32.9": {"sertraline", "escitalopram"}, "F41.1": {"sertraline", "escitalopram"},
}
# Exam findings that are noise (no code or procedure); "x" = primary codes they would contradict.
# Notes for J06.9 and G43.909 get none: their only procedure is an examination.
EXAM = [
    ("NAD", {"J96.01", "I21.3", "S72.001A"}), ("RRR", {"I48.91"}), ("abd soft, NT", {"K35.80", "K80.20", "N20.0"}),
    ("A&Ox3", {"A41.9"}), ("no LE edema", {"I50.9", "I11.0", "I82.401", "L03.115"}),
    ("lungs clear", {"J44.1", "J18.9", "J96.01", "I50.9", "I11.0", "J40", "R06.02", "J45.909"}),
    ("no focal deficits", {"I63.9"}), ("mucosa moist", {"E86.0", "E10.10"}), ("no rash", {"L03.115"}),
    ("S1S2 nl", set()), ("alert, conversant", {"A41.9"}), ("no JVD", {"I50.9", "I11.0"}),
    ("mild distress", set()), ("normal gait", {"S72.001A", "M17.11", "M54.5"}),
]
ONSET = ["x2d", "since yesterday", "for 1 wk", "since this AM", "x3 days", "onset 0600", "for months",
         "gradual over 3 days", "sudden onset", "on and off x2 wk", "since last night"]
FHX = ["father w/ MI at 55", "mother w/ DM2", "sister w/ breast ca", "brother w/ stroke",
       "mother had CHF", "father w/ colon ca", "FHx of HTN", "no pertinent FHx", "mother w/ PE"]
# Conditions ruled out / negated, with the test that ruled them out (may be a listed procedure).
DISTRACTORS = [
    ("r/o PE, CTA negative", {"I26.99"}, "CT pulmonary angiography"),
    ("PE ruled out by CTPA", {"I26.99"}, "CT pulmonary angiography"),
    ("D-dimer neg, low suspicion for PE", {"I26.99"}, None),
    ("ACS ruled out, trop neg x2", {"I21.4", "I21.3", "I21.9"}, "Troponin measurement"),
    ("no STEMI on ECG", {"I21.3", "I21.9"}, "Electrocardiogram"),
    ("DVT ruled out, LE duplex negative", {"I82.401"}, "Venous duplex ultrasound"),
    ("no PNA on CXR", {"J18.9"}, "Chest X-ray"),
    ("CXR without infiltrate", {"J18.9"}, "Chest X-ray"),
    ("CT head neg for bleed", set(), "CT head"),
    ("UA neg, doubt UTI", {"N39.0"}, "Urinalysis"),
    ("hip XR neg for fx", {"S72.001A"}, "Hip X-ray"),
    ("lipase nl, pancreatitis unlikely", set(), None),
    ("does not meet sepsis criteria", {"A41.9"}, None),
    ("no signs of DKA, gap closed", {"E10.10"}, None),
    ("no acute infarct on MRI", {"I63.9"}, None),
    ("appendix nl on CT A/P", {"K35.80"}, "CT abdomen and pelvis"),
    ("no stones on CT A/P", {"N20.0"}, "CT abdomen and pelvis"),
    ("not in AF on EKG", {"I48.91", "I48.0"}, "Electrocardiogram"),
    ("CBC nl, no anemia", {"D64.9", "K92.2"}, "Complete blood count"),
    ("afebrile, no infection suspected", {"R50.9", "A41.9", "J18.9"}, None),
    ("TSH nl", {"E03.9"}, "TSH measurement"),
    ("no hypoxia", {"J96.01", "R06.02"}, None),
    ("flu/COVID swab neg", set(), None),
    ("!PE excluded (CTPA clean)", {"I26.99"}, "CT pulmonary angiography"),
    ("!MI excluded, troponins flat", {"I21.4", "I21.3", "I21.9"}, "Troponin measurement"),
    ("!pneumonia unlikely, CXR clear", {"J18.9"}, "Chest X-ray"),
    ("!no DVT on duplex", {"I82.401"}, "Venous duplex ultrasound"),
    ("!stroke ruled out", {"I63.9"}, None),
]
# Tests that are not this code's procedures (noise the answer must leave out).
NOISE_TESTS = ["LFTs", "lipase", "coags", "D-dimer", "UDS", "Mg", "TSH",
               "CBC", "BMP", "UA", "CXR", "ECG", "blood glucose", "INR", "ESR/CRP", "flu swab"]
NOISE_TEST_PROC = {"TSH": "TSH measurement", "CBC": "Complete blood count", "BMP": "Basic metabolic panel",
                   "UA": "Urinalysis", "CXR": "Chest X-ray", "ECG": "Electrocardiogram"}

TYPOS = {"patient": "pateint", "presents": "presnets", "received": "recieved", "history": "histroy",
         "tomorrow": "tommorow", "discharged": "dischared", "denies": "denys", "reports": "reprots",
         "started": "strated", "recommended": "recomended", "complains": "complans",
         "symptoms": "symtoms", "admitted": "admited", "family": "famliy", "significant": "signficant",
         "with": "wiht", "and": "adn", "states": "sates"}

NAMES = ["Patel", "Nguyen", "Okafor", "Smith", "Garcia", "Kowalski", "Haddad", "Chen", "Brennan",
         "Moreau", "Lindqvist", "Adeyemi", "Romero", "Fischer", "Tanaka", "O'Neill"]
SERVICES = {"cardio": "Cardiology", "pulm": "Pulmonology", "neuro": "Neurology", "gi": "GI",
            "endo": "Endocrinology", "renal": "Nephrology", "surg": "General surgery",
            "ortho": "Orthopedics", "id": "Infectious disease", "psych": "Psychiatry",
            "med": "Hospital medicine"}
SERVICE_BY_CODE = {
    "I21.4": "cardio", "I21.3": "cardio", "I21.9": "cardio", "I50.9": "cardio", "I11.0": "cardio",
    "I48.91": "cardio", "I48.0": "cardio", "I10": "cardio", "R07.9": "cardio", "R55": "cardio",
    "I26.99": "pulm", "I82.401": "med", "I63.9": "neuro", "G45.9": "neuro", "E11.9": "endo",
    "E11.65": "endo", "E10.10": "endo", "E03.9": "endo", "E86.0": "med", "D64.9": "med",
    "J44.1": "pulm", "J45.909": "pulm", "J18.9": "pulm", "J06.9": "med", "J40": "pulm",
    "J96.01": "pulm", "R06.02": "pulm", "A41.9": "id", "N39.0": "med", "N17.9": "renal",
    "N20.0": "renal", "K35.80": "surg", "K80.20": "surg", "K21.9": "gi", "K92.2": "gi",
    "K50.90": "gi", "K59.00": "gi", "L03.115": "id", "S72.001A": "ortho", "M54.5": "ortho",
    "M17.11": "ortho", "G43.909": "neuro", "F32.9": "psych", "F41.1": "psych", "R50.9": "id",
    "R13.10": "gi",
}
VITAL_ADJ = {  # code -> overrides: temp C, HR, SBP, DBP, SpO2
    "A41.9": {"t": (38.4, 40.0), "hr": (108, 135), "sbp": (78, 96), "dbp": (40, 58)},
    "R50.9": {"t": (38.3, 39.8), "hr": (95, 118)}, "J18.9": {"t": (38.1, 39.6), "spo2": (88, 94)},
    "L03.115": {"t": (37.6, 38.9)}, "I48.91": {"hr": (115, 160)}, "I48.0": {"hr": (62, 88)},
    "I26.99": {"hr": (104, 130), "spo2": (87, 93)}, "E10.10": {"hr": (110, 135)},
    "E86.0": {"hr": (102, 124), "sbp": (92, 108)}, "J96.01": {"spo2": (76, 87), "hr": (105, 130)},
    "J44.1": {"spo2": (85, 91)}, "I50.9": {"spo2": (88, 94)}, "I11.0": {"sbp": (165, 198), "spo2": (88, 94)},
    "I10": {"sbp": (148, 178), "dbp": (92, 108)}, "K92.2": {"hr": (100, 122), "sbp": (88, 104)},
    "I21.3": {"hr": (88, 110)},
}


# --------------------------------------------------------------------------------------------
# Source table
# --------------------------------------------------------------------------------------------

def load_codes(path):
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            split_list = lambda s: [x.strip() for x in s.split(";") if x.strip()]
            rows.append({
                "code": row["code"], "role": row["role"], "description": row["description"],
                "jargon": split_list(row["jargon"]), "urgency": row["urgency"].strip(),
                "procedures": split_list(row["procedures"]),
            })
    return rows


def parse_phrase(item):
    """'!text|Proc A|Proc B' -> (text, heldout, [procs])."""
    heldout = item.startswith("!")
    parts = item.lstrip("!").split("|")
    return parts[0], heldout, parts[1:]


class Picker:
    """Chooses phrasings: train/valid never see test-only ones; test prefers them half the time."""

    def __init__(self, rng, split):
        self.rng = rng
        self.split = split

    def pick(self, items):
        parsed = [parse_phrase(i) for i in items]
        train = [p for p in parsed if not p[1]]
        held = [p for p in parsed if p[1]]
        if self.split != "test" or not held:
            pool = train
        else:
            pool = held if self.rng.random() < 0.5 else train
        text, is_held, procs = self.rng.choice(pool)
        return text, is_held, procs


# --------------------------------------------------------------------------------------------
# Case: the facts of one note, before a style writes them down.
# --------------------------------------------------------------------------------------------

def make_case(rng, picker, row, secondaries):
    code = row["code"]
    case = {"code": code, "row": row, "held_used": 0}
    lo, hi = AGE_RANGE.get(code, (24, 91))
    case["age"] = rng.randint(lo, hi)
    case["sex"] = rng.choice("MF")

    def pick(items):
        text, held, procs = picker.pick(items)
        case["held_used"] += held
        return text, procs

    # Primary diagnosis mention(s).
    dx_pool = list(row["jargon"]) * 2 + [row["description"]] + DX_SYNONYMS[code]
    if picker.split != "test":
        dx_pool += DX_SYNONYMS_MORE[code]
    dx, dx_procs = pick(dx_pool)
    case["dx"] = dx
    implied = set(dx_procs)
    case["dx2"] = None
    if rng.random() < 0.3:
        dx2, p2 = pick(dx_pool)
        case["dx2"] = dx2
        implied |= set(p2)
    case["sx"] = rng.choice(SYMPTOMS[code]) if rng.random() < 0.75 else None
    if case["sx"] and rng.random() < 0.45:
        case["sx"] += " " + rng.choice(ONSET)

    # Procedures.
    proc_mentions = []  # (proc, fragment)
    chosen = set()
    p_each = rng.choice([0.35, 0.55, 0.75])
    for proc in row["procedures"]:
        if proc in implied:
            chosen.add(proc)
            continue
        if rng.random() < p_each:
            chosen.add(proc)
            proc_mentions.append((proc, render_proc(rng, pick, proc, code)))
    case["procs"] = proc_mentions
    # A declined/deferred procedure that must stay out of the answer.
    case["neg_proc"] = None
    left = [p for p in row["procedures"] if p not in chosen]
    if left and rng.random() < 0.14:
        proc = rng.choice(left)
        name, _ = pick(PROCS[proc][1])
        tmpl, _ = pick(PROC_NEGATED)
        case["neg_proc"] = tmpl.format(p=name)
        left.remove(proc)

    # Distractor (ruled-out condition).
    case["distractor"] = None
    if rng.random() < 0.28:
        options = [d for d in DISTRACTORS
                   if code not in d[1] and (d[2] is None or d[2] in chosen or d[2] in left
                                            or d[2] not in row["procedures"])]
        text, held, _ = parse_phrase(rng.choice([d[0] for d in options]))
        if held and picker.split != "test":
            options = [d for d in options if not d[0].startswith("!")]
            text, held, _ = parse_phrase(rng.choice([d[0] for d in options]))
        d = next(d for d in DISTRACTORS if d[0].lstrip("!") == text)
        case["held_used"] += held
        case["distractor"] = text
        if d[2] in row["procedures"]:
            chosen.add(d[2])
    # Noise tests outside this code's list.
    case["noise_tests"] = []
    if rng.random() < 0.3:
        pool = [t for t in NOISE_TESTS if NOISE_TEST_PROC.get(t) not in row["procedures"]]
        case["noise_tests"] = rng.sample(pool, rng.randint(1, 2))

    # Secondary codes.
    sec = {}
    codes = []
    r = rng.random()
    if r < 0.24:
        sec["smoke"] = pick(SMOKER_POS)[0]
        codes.append("F17.210")
    elif r < 0.32:
        sec["smoke"] = pick(TOBACCO_USE_POS)[0]
        codes.append("Z72.0")
    elif r < 0.55:
        sec["smoke"] = pick(TOBACCO_NEG)[0]
    r = rng.random()
    if r < 0.2:
        sec["adh"] = pick(NONCOMPLIANCE_POS)[0].format(his="his" if case["sex"] == "M" else "her")
        codes.append("Z91.14")
    elif r < 0.4:
        sec["adh"] = pick(NONCOMPLIANCE_NEG)[0]
    r = rng.random()
    if r < 0.26:
        sec["hld"] = pick(HLD_POS)[0]
        codes.append("E78.5")
    elif r < 0.46:
        sec["hld"] = pick(HLD_NEG)[0]
    r = rng.random()
    bmi = round(rng.uniform(40.2, 56.0), 1)
    lowbmi = round(rng.uniform(19.0, 34.5), 1)
    if r < 0.16:
        sec["obes"] = pick(OBESITY_POS)[0].format(bmi=bmi)
        codes.append("E66.01")
    elif r < 0.34:
        sec["obes"] = pick(OBESITY_NEG)[0].format(lowbmi=lowbmi)
    case["sec"] = sec
    for c in codes:
        assert c in secondaries, c

    # Noise: history, meds, family history, vitals.
    pmh_pool = [p for p, excl in PMH if code not in excl]
    case["pmh"] = rng.sample(pmh_pool, rng.choice([0, 1, 1, 2, 2, 3]))
    med_pool = [m for m in MEDS if m not in MED_EXCLUDE.get(code, set())]
    case["meds"] = rng.sample(med_pool, rng.choice([0, 0, 1, 2, 3, 4]))
    case["fhx"] = rng.choice(FHX) if rng.random() < 0.3 else None
    exam_pool = [e for e, excl in EXAM if code not in excl] if code not in ("J06.9", "G43.909") else []
    case["exam"] = rng.sample(exam_pool, rng.choice([0, 1, 2, 3])) if exam_pool else []
    case["allergy"] = rng.choice(["NKDA", "NKDA", "PCN allergy", "sulfa allergy", "allergic to codeine"])
    case["vitals"] = make_vitals(rng, code, "obes" not in sec, case["row"]["code"] == "R06.02")

    case["procedures"] = [p for p in row["procedures"] if p in chosen]
    case["billing"] = [code] + [c for c in SECONDARY_ORDER if c in codes]
    return case


def render_proc(rng, pick, proc, code):
    kind, names = PROCS[proc]
    name, _ = pick(names)
    done = rng.random() < 0.6
    if kind == "test":
        tmpl, _ = pick(TEST_DONE if done else TEST_ORDERED)
        if proc == "Electrocardiogram" and code in ECG_BY_CODE:
            res = rng.choice(ECG_BY_CODE[code])
        else:
            res = rng.choice(RESULTS.get(proc, GENERIC_RESULTS))
        return tmpl.format(p=name, r=res)
    if kind == "proc":
        tmpl, _ = pick(PROC_DONE if done else PROC_ORDERED)
    elif kind == "referral":
        tmpl, _ = pick(REF_DONE)
    else:
        tmpl, _ = pick(TX_DONE if done else TX_ORDERED)
    return tmpl.format(p=name)


def make_vitals(rng, code, allow_bmi, no_spo2):
    adj = VITAL_ADJ.get(code, {})
    t = round(rng.uniform(*adj.get("t", (36.4, 37.4))), 1)
    hr = rng.randint(*adj.get("hr", (62, 98)))
    sbp = rng.randint(*adj.get("sbp", (108, 146)))
    dbp = rng.randint(*adj.get("dbp", (62, 88)))
    dbp = min(dbp, sbp - 25)
    rr = rng.randint(14, 24)
    spo2 = rng.randint(*adj.get("spo2", (94, 100)))
    fmt = rng.randrange(4)
    tf = round(t * 9 / 5 + 32, 1)
    if fmt == 0:
        parts = [f"T {t}", f"HR {hr}", f"BP {sbp}/{dbp}", f"RR {rr}", f"SpO2 {spo2}% RA"]
    elif fmt == 1:
        parts = [f"{tf}F", f"{hr}", f"{sbp}/{dbp}", f"{rr}", f"{spo2}%RA"]
    elif fmt == 2:
        parts = [f"BP {sbp}/{dbp}", f"P {hr}", f"R {rr}", f"T {tf}", f"O2 sat {spo2}% on RA"]
    else:
        parts = [f"Temp {t}C", f"pulse {hr}", f"BP {sbp}/{dbp}", f"sat {spo2}%"]
    if no_spo2:
        parts = [p for p in parts if "%" not in p]
    if allow_bmi and rng.random() < 0.15:
        parts.append(f"BMI {round(rng.uniform(19, 34.5), 1)}")
    sep = ", " if fmt == 1 else rng.choice([", ", " ", "; "])
    return sep.join(parts)


# --------------------------------------------------------------------------------------------
# Writing helpers
# --------------------------------------------------------------------------------------------

def demo(rng, case, form=None):
    a, s = case["age"], case["sex"]
    man = s == "M"
    forms = [f"{a}{s}", f"{a}yo {s}", f"{a} y/o {'male' if man else 'female'}",
             f"{a}-year-old {'man' if man else 'woman'}", f"{a} yo {'M' if man else 'F'}",
             f"{a}{'yM' if man else 'yF'}", f"{a} {'m' if man else 'f'}"]
    return forms[form] if form is not None else rng.choice(forms)


def he(case, cap=False):
    w = "he" if case["sex"] == "M" else "she"
    return w.capitalize() if cap else w


def join_list(rng, items):
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    sep = rng.choice([", ", "; ", ", "])
    if rng.random() < 0.5:
        return sep.join(items[:-1]) + " and " + items[-1]
    return sep.join(items)


def sent(s):
    s = s.strip()
    if not s:
        return ""
    s = s[0].upper() + s[1:]
    return s if s[-1] in ".?!:" else s + "."


def time_str(rng):
    h, m = rng.randrange(24), rng.randrange(60)
    return rng.choice([f"{h:02d}{m:02d}", f"{h:02d}:{m:02d}", f"{(h % 12) or 12}:{m:02d} {'am' if h < 12 else 'pm'}"])


def date_str(rng):
    y, mo, d = rng.choice([2021, 2022, 2023, 2024, 2025]), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{mo}/{d}/{y}", f"{y}-{mo:02d}-{d:02d}", f"{mo:02d}/{d:02d}/{str(y)[2:]}"])


def history_items(rng, case, keep):
    """PMH list with the history-like secondary mentions mixed in."""
    items = list(case["pmh"]) if keep["pmh"] else []
    for k in ("hld", "obes"):
        if k in case["sec"] and k not in case["_placed"] and rng.random() < 0.6:
            items.insert(rng.randrange(len(items) + 1), case["sec"][k])
            case["_placed"].add(k)
    return items


def social_items(rng, case):
    items = []
    for k in ("smoke", "adh", "hld", "obes"):
        if k in case["sec"] and k not in case["_placed"]:
            items.append(case["sec"][k])
            case["_placed"].add(k)
    rng.shuffle(items)
    return items


def exam_txt(rng, case, keep):
    if not (keep["exam"] and case["exam"]):
        return ""
    return rng.choice([", ", "; ", " "]).join(case["exam"])


def proc_frags(case):
    return [f for _, f in case["procs"]]


# --------------------------------------------------------------------------------------------
# Styles. Each returns the note text; `keep` says which optional noise to include.
# --------------------------------------------------------------------------------------------

def style_ed_triage(rng, case, keep):
    lines = []
    hdr = rng.choice(["ED TRIAGE {t}", "Triage note {t}", "ED triage - {t}", "TRIAGE ({t})", "Arrived {t}, triaged"])
    lines.append(hdr.format(t=time_str(rng)))
    arrival = rng.choice(["via EMS", "walk-in", "BIBA", "by private car", "from nursing home", "w/ family"])
    cc = case["sx"] or case["dx"]
    lines.append(sent(f"{demo(rng, case)} {arrival} c/o {cc}"))
    hist = history_items(rng, case, keep)
    if hist:
        lines.append(sent(rng.choice(["PMH: ", "Hx ", "PMHx "]) + join_list(rng, hist)))
    soc = social_items(rng, case)
    if soc:
        lines.append(sent(rng.choice(["Social: ", "SH: ", ""]) + "; ".join(soc)))
    if keep["vitals"]:
        lines.append(sent(rng.choice(["VS: ", "Vitals ", "VS "]) + case["vitals"]))
    if keep["meds"] and case["meds"]:
        lines.append(sent("Meds: " + ", ".join(case["meds"])))
    esi = {"emergency": [1, 2], "urgent": [2, 3], "routine": [3, 4, 5]}[case["row"]["urgency"]]
    dxl = rng.choice(["Triage dx: {d}", "Known {d}", "Sent in for {d}", "Dx'd w/ {d} at urgent care",
                      "Impression: {d}", "Triage impression {d}"]).format(d=case["dx"])
    lines.append(sent(dxl))
    pf = proc_frags(case)
    if case["distractor"]:
        pf.append(case["distractor"])
    if keep["noise"] and case["noise_tests"]:
        pf.append(", ".join(case["noise_tests"]) + " sent")
    if case["neg_proc"]:
        pf.append(case["neg_proc"])
    rng.shuffle(pf)
    if pf:
        lines.append(sent(rng.choice(["Protocol orders: ", "In triage: ", "", "Orders: "]) + "; ".join(pf)))
    lines.append(f"ESI {rng.choice(esi)}.")
    if keep["allergy"]:
        lines.insert(rng.randint(2, len(lines) - 1), case["allergy"] + ".")
    return "\n".join(lines) if rng.random() < 0.6 else " ".join(lines)


def style_soap(rng, case, keep):
    s_bits = [f"{demo(rng, case)} " + rng.choice(["here with", "presents w/", "reports", "c/o"]) + " "
              + (case["sx"] or case["dx"])]
    soc = social_items(rng, case)
    hist = history_items(rng, case, keep)
    if hist:
        s_bits.append(rng.choice(["PMH ", "Hx of ", "hx "]) + join_list(rng, hist))
    s_bits += soc
    o_bits = []
    if keep["vitals"]:
        o_bits.append(case["vitals"])
    if exam_txt(rng, case, keep):
        o_bits.append(exam_txt(rng, case, keep))
    if keep["fhx"] and case["fhx"]:
        s_bits.append("FHx " + case["fhx"])
    o_bits += [f for _, f in case["procs"] if rng.random() < 0.5]
    if case["distractor"]:
        o_bits.append(case["distractor"])
    if keep["noise"] and case["noise_tests"]:
        o_bits.append(" ".join(case["noise_tests"]) + rng.choice([" wnl", " unremarkable", " ok"]))
    plan = [f for f in proc_frags(case) if f not in o_bits]
    if case["neg_proc"]:
        plan.append(case["neg_proc"])
    plan.append(rng.choice(["f/u 2 wk", "return precautions", "admit", "d/c home", "RTC prn", "admit tele",
                            "f/u PCP"]))
    a = case["dx"] + (f" ({case['dx2']})" if case["dx2"] else "")
    sep = rng.choice(["\n", " "])
    secs = [("S: ", "; ".join(s_bits)), ("O: ", "; ".join(o_bits) or "see flowsheet"),
            ("A: ", a), ("P: ", "; ".join(plan))]
    if rng.random() < 0.3:
        secs = [(k.replace("S:", "Subjective:").replace("O:", "Objective:").replace("A:", "Assessment:")
                 .replace("P:", "Plan:"), v) for k, v in secs]
    return sep.join(k + sent(v) for k, v in secs)


def style_discharge_summary(rng, case, keep):
    lines = [rng.choice(["DISCHARGE SUMMARY", "Discharge Summary", "D/C summary", "Hospital discharge note"])]
    if rng.random() < 0.7:
        lines.append(f"Admitted {date_str(rng)}, discharged {rng.choice(['HD#2', 'HD#3', 'HD#4', 'day 5', 'after 2 nights'])}.")
    lines.append(rng.choice(["Principal diagnosis: ", "Discharge diagnosis: ", "Primary dx: ", "Final diagnosis: "])
                 + case["dx"])
    hist = history_items(rng, case, keep)
    soc = social_items(rng, case)
    other = hist + soc
    if other:
        lines.append(rng.choice(["Secondary/other: ", "Comorbidities: ", "Other problems: ", "PMH: "])
                     + "; ".join(other))
    course = []
    intro = rng.choice(["{d} admitted with {x}", "{d} was admitted with {x}", "{d} presented with {x}",
                        "Pt is a {d} who came in with {x}"])
    course.append(intro.format(d=demo(rng, case), x=case["sx"] or case["dx2"] or case["dx"]))
    course += proc_frags(case)
    if case["distractor"]:
        course.append(case["distractor"])
    if case["neg_proc"]:
        course.append(case["neg_proc"])
    if keep["noise"] and case["noise_tests"]:
        course.append(" and ".join(case["noise_tests"]) + " unremarkable")
    lines.append(rng.choice(["Hospital course: ", "Course: ", "Brief course: "])
                 + ". ".join(sent(c)[:-1] for c in course) + ".")
    if keep["meds"] and case["meds"]:
        lines.append("Home meds: " + ", ".join(case["meds"]) + ".")
    lines.append(rng.choice(["Dispo: home.", "Discharged home in stable condition.", "Dispo: SNF.",
                             "F/u PCP 1 wk.", "Discharged home with family."]))
    return "\n".join(lines)


def style_telephone(rng, case, keep):
    who = rng.choice(["pt", "patient", "pt's daughter", "pt's wife", "pt's husband", "pt's son", "caregiver"])
    parts = [rng.choice(["Telephone encounter {d} {t}.", "Phone note {d}.", "TC {t}:", "Call from {w} at {t}.",
                         "Spoke with {w} by phone {d}."]).format(d=date_str(rng), t=time_str(rng), w=who)]
    dxs = rng.choice(["Pt with known {d} calling re: {x}.", "{w} reports {x}; hx of {d}.",
                      "Calling about {x}. Recently dx'd with {d}.", "Re: {d}. {w} states {x}.",
                      "F/u call for {d}, {x}."])
    parts.append(sent(dxs.format(d=case["dx"], x=case["sx"] or "questions about plan", w=who)))
    soc = social_items(rng, case) + history_items(rng, case, keep)
    if soc:
        parts.append(sent(rng.choice(["Also notes ", "Of note: ", "Per chart: ", ""]) + "; ".join(soc)))
    if keep["meds"] and case["meds"]:
        parts.append(sent("Reviewed meds: " + ", ".join(case["meds"])))
    pf = proc_frags(case)
    if case["distractor"]:
        pf.append(case["distractor"] + " (per chart)")
    if case["neg_proc"]:
        pf.append(case["neg_proc"])
    if pf:
        parts.append(sent(rng.choice(["Advised: ", "Plan discussed: ", "Per Dr. {n}: ", "Informed: "])
                          .format(n=rng.choice(NAMES)) + "; ".join(pf)))
    parts.append(rng.choice(["Pt verbalized understanding.", "Call back prn.", "ED precautions given.",
                             "Will call back w/ results.", "Appt made."]))
    return " ".join(parts)


def style_consult(rng, case, keep):
    svc = SERVICES[SERVICE_BY_CODE[case["code"]] if rng.random() < 0.8 else rng.choice(list(SERVICE_BY_CODE.values()))]
    lines = [rng.choice(["{s} consult", "{s} Consult Note", "Consult: {s}", "{s} consultation"]).format(s=svc)]
    lines.append(rng.choice(["Reason: ", "Asked to see for ", "RFC: ", "Consulted re: "])
                 + (case["dx2"] or case["sx"] or case["dx"]) + ".")
    hpi = f"{demo(rng, case)}" + (f" w/ {join_list(rng, case['pmh'])}" if keep["pmh"] and case["pmh"] else "")
    hpi += " " + rng.choice(["seen at bedside", "seen on the unit", "chart reviewed", "interviewed with family"])
    lines.append(sent(hpi))
    soc = social_items(rng, case)
    if soc:
        lines.append(sent("SH: " + "; ".join(soc)))
    if keep["vitals"]:
        lines.append(sent("Vitals " + case["vitals"]))
    if exam_txt(rng, case, keep):
        lines.append(sent(rng.choice(["Exam: ", "PE: ", "On exam "]) + exam_txt(rng, case, keep)))
    if keep["allergy"]:
        lines.insert(2, sent(case["allergy"]))
    data = []
    if case["distractor"]:
        data.append(case["distractor"])
    if keep["noise"] and case["noise_tests"]:
        data.append("/".join(case["noise_tests"]) + " reviewed")
    if data:
        lines.append(sent("Data: " + "; ".join(data)))
    lines.append(rng.choice(["Impression: ", "Assessment: ", "A: ", "IMP: "]) + case["dx"] + ".")
    recs = proc_frags(case)
    if case["neg_proc"]:
        recs.append(case["neg_proc"])
    recs.append(rng.choice(["will follow", "thank you for this consult", "call w/ questions", "we will sign off"]))
    if rng.random() < 0.5:
        lines.append("Recs: " + " ".join(f"{i + 1}) {r}" for i, r in enumerate(recs)))
    else:
        lines.append("Recommendations: " + "; ".join(recs) + ".")
    return "\n".join(lines)


def style_shorthand(rng, case, keep):
    bits = [demo(rng, case, rng.choice([0, 1, 5, 6]))]
    hist = history_items(rng, case, keep)
    if hist:
        bits[0] += " w/ hx " + ", ".join(hist)
    soc = social_items(rng, case)
    bits += soc
    if case["sx"]:
        bits.append(rng.choice(["p/w ", "c/o ", "here w/ "]) + case["sx"])
    if keep["vitals"] and rng.random() < 0.5:
        bits.append(case["vitals"])
    if exam_txt(rng, case, keep):
        bits.append(exam_txt(rng, case, keep))
    pf = proc_frags(case)
    if case["distractor"]:
        pf.append(case["distractor"])
    if keep["noise"] and case["noise_tests"]:
        pf.append("+".join(case["noise_tests"]) + " nl")
    if case["neg_proc"]:
        pf.append(case["neg_proc"])
    rng.shuffle(pf)
    bits += pf
    dxb = rng.choice(["Dx {d}", "dx: {d}", "-> {d}", "imp {d}", "A/P {d}", "= {d}"]).format(d=case["dx"])
    bits.insert(rng.randint(1, len(bits)), dxb)
    bits.append(rng.choice(["d/c home", "admit", "f/u 1wk", "obs", "to floor", "RTC 3mo", ""]))
    sep = rng.choice([". ", ", ", "; ", " / "])
    out = sep.join(b for b in bits if b)
    return out + ("." if rng.random() < 0.5 else "")


def style_hp_narrative(rng, case, keep):
    man = case["sex"] == "M"
    s = []
    s.append(rng.choice([
        "The patient is a {a}-year-old {g} who presents with {x}.",
        "This is a {a}-year-old {g} presenting with {x}.",
        "{A}-year-old {g} seen today for {x}.",
        "Mr./Ms. {n} is a {a} year old {g} with a chief complaint of {x}."]).format(
        a=case["age"], A=case["age"], g="man" if man else "woman", n=rng.choice(NAMES),
        x=case["sx"] or case["dx2"] or case["dx"]))
    hist = history_items(rng, case, keep)
    if hist:
        s.append(rng.choice(["Past history is notable for {h}.", "Medical history includes {h}.",
                             "{H} has a history of {h}."]).format(h=join_list(rng, hist), H=he(case, True)))
    soc = social_items(rng, case)
    if soc:
        s.append(rng.choice(["Socially, {x}.", "Social history: {x}.", "Of note, {x}."]).format(x="; ".join(soc)))
    if keep["meds"] and case["meds"]:
        s.append(f"{he(case, True)} takes {join_list(rng, case['meds'])}.")
    if keep["vitals"]:
        s.append(f"Vital signs: {case['vitals']}.")
    if exam_txt(rng, case, keep):
        s.append(sent(rng.choice(["On examination, ", "Exam notable for ", "Exam: "]) + exam_txt(rng, case, keep)))
    if keep["allergy"]:
        s.append(sent(rng.choice(["Allergies: ", ""]) + case["allergy"]))
    for f in proc_frags(case):
        s.append(sent(f))
    if case["distractor"]:
        s.append(sent(case["distractor"]))
    if keep["noise"] and case["noise_tests"]:
        s.append(sent(join_list(rng, case["noise_tests"]) + " were within normal limits"))
    if case["neg_proc"]:
        s.append(sent(case["neg_proc"]))
    s.append(rng.choice(["The diagnosis is {d}.", "Assessment: {d}.", "Overall picture is consistent with {d}.",
                         "Working diagnosis: {d}.", "We believe this represents {d}."]).format(d=case["dx"]))
    if keep["fhx"] and case["fhx"]:
        s.insert(rng.randint(1, len(s) - 1), sent("Family history: " + case["fhx"]))
    return " ".join(s)


def style_progress_note(rng, case, keep):
    lines = [rng.choice(["Progress note HD#{n}", "Daily progress note, day {n}", "PN - hospital day {n}",
                         "Medicine progress note (HD {n})"]).format(n=rng.randint(1, 6))]
    lines.append(rng.choice(["Subj: ", "Overnight: ", "S/O: "]) + rng.choice(
        ["no acute events", "slept poorly", "feels better", "pain controlled", "ambulating", "NAEON"]) + ".")
    if keep["vitals"]:
        lines.append("VS " + case["vitals"] + ".")
    if exam_txt(rng, case, keep):
        lines.append(sent("Exam: " + exam_txt(rng, case, keep)))
    if case["distractor"]:
        lines.append(sent(case["distractor"]))
    lines.append(rng.choice(["A/P:", "Assessment and plan:", "Plan by problem:"]))
    p1 = "; ".join(proc_frags(case) + ([case["neg_proc"]] if case["neg_proc"] else []))
    lines.append(f"# {case['dx']}" + (f": {p1}" if p1 else ""))
    extras = history_items(rng, case, keep) + social_items(rng, case)
    for e in extras:
        lines.append(f"# {e}" + rng.choice(["", " - stable", ", continue home meds", " - counseled"]))
    if keep["noise"] and case["noise_tests"]:
        lines.append("# labs: " + ", ".join(case["noise_tests"]) + " ok")
    lines.append(rng.choice(["Dispo: pending", "DVT ppx: SQH", "Code: full", "Dispo: home tmrw"]))
    return "\n".join(lines)


def style_clinic_visit(rng, case, keep):
    lines = []
    lines.append(rng.choice(["Clinic visit {d}.", "Office visit {d}.", "Outpatient visit", "Urgent care visit {d}."])
                 .format(d=date_str(rng)))
    lines.append(rng.choice(["Reason for visit: ", "CC: ", "Chief complaint: "]) + (case["sx"] or case["dx"]) + ".")
    hpi = f"{demo(rng, case)} "
    hpi += rng.choice(["reports", "describes", "notes", "states"]) + " " + rng.choice(
        ["sx for several days", "gradual onset", "sx since last visit", "worsening over 1 wk", "it started yesterday"])
    lines.append("HPI: " + sent(hpi))
    hist = history_items(rng, case, keep)
    if hist:
        lines.append("PMH: " + ", ".join(hist) + ".")
    soc = social_items(rng, case)
    if soc:
        lines.append("Social: " + "; ".join(soc) + ".")
    if keep["meds"] and case["meds"]:
        lines.append("Meds: " + ", ".join(case["meds"]) + ".")
    if keep["vitals"]:
        lines.append(case["vitals"] + ".")
    if exam_txt(rng, case, keep):
        lines.append(sent(rng.choice(["Exam: ", "PE: ", "Physical: "]) + exam_txt(rng, case, keep)))
    if keep["allergy"]:
        lines.append(sent("Allergies: " + case["allergy"]))
    if case["distractor"]:
        lines.append(sent(case["distractor"]))
    lines.append(rng.choice(["Assessment and plan: ", "A/P: ", "Assessment: "]) + case["dx"] + ".")
    plan = proc_frags(case)
    if case["neg_proc"]:
        plan.append(case["neg_proc"])
    if keep["noise"] and case["noise_tests"]:
        plan.append(", ".join(case["noise_tests"]) + " ok")
    plan.append(rng.choice(["RTC 3 mo", "f/u 2 wks", "call if worse", "return precautions reviewed"]))
    lines.append("Plan: " + "; ".join(plan) + ".")
    if keep["fhx"] and case["fhx"]:
        lines.insert(3, "FHx: " + case["fhx"] + ".")
    return "\n".join(lines)


def style_encounter_form(rng, case, keep):
    rows = [(rng.choice(["Encounter date", "DOS", "Date of service"]), date_str(rng)),
            (rng.choice(["Patient", "Pt"]), demo(rng, case, rng.choice([0, 2, 4])))]
    rows.append((rng.choice(["Diagnosis", "Primary Dx", "Dx", "Visit diagnosis"]), case["dx"]))
    other = history_items(rng, case, keep) + social_items(rng, case)
    if other:
        rows.append((rng.choice(["Other", "Also documented", "Additional"]), "; ".join(other)))
    orders = proc_frags(case)
    if orders:
        rows.append((rng.choice(["Orders/procedures", "Services", "Procedures", "Orders"]), "; ".join(orders)))
    if case["neg_proc"] or case["distractor"]:
        rows.append(("Notes", "; ".join(x for x in (case["neg_proc"], case["distractor"]) if x)))
    if keep["noise"] and case["noise_tests"]:
        rows.append(("Labs", ", ".join(case["noise_tests"]) + " nl"))
    if keep["vitals"]:
        rows.append(("Vitals", case["vitals"]))
    head = rows[:2]
    tail = rows[2:]
    rng.shuffle(tail)
    sep = rng.choice([": ", " - ", ":\t"]) if rng.random() < 0.9 else ": "
    return "\n".join(k + sep + v for k, v in head + tail)


def style_sbar_handoff(rng, case, keep):
    s = "S: " + sent(f"{demo(rng, case)} " + rng.choice(["on the floor with ", "in bed 12 with ", "admitted for "])
                     + case["dx"])
    b_items = history_items(rng, case, keep) + social_items(rng, case)
    b = "B: " + sent((case["sx"] + "; " if case["sx"] else "") + ("; ".join(b_items) if b_items else "no sig hx"))
    a_items = []
    if keep["vitals"]:
        a_items.append(case["vitals"])
    if exam_txt(rng, case, keep):
        a_items.append(exam_txt(rng, case, keep))
    a_items += proc_frags(case)
    if case["distractor"]:
        a_items.append(case["distractor"])
    a = "A: " + sent("; ".join(a_items) if a_items else "stable")
    r_items = [case["neg_proc"]] if case["neg_proc"] else []
    r_items.append(rng.choice(["recheck vitals q4h", "call MD if worse", "reassess in AM", "keep NPO"]))
    r = "R: " + sent("; ".join(r_items))
    hdr = rng.choice(["SBAR handoff", "Nursing handoff (SBAR)", "Shift report"])
    return hdr + "\n" + "\n".join([s, b, a, r])


def style_referral_letter(rng, case, keep):
    man = case["sex"] == "M"
    doc = rng.choice(NAMES)
    p = [f"Dear Dr. {doc},"]
    p.append(rng.choice([
        "Thank you for seeing my patient, a {a}-year-old {g}, whom I am referring for {d}.",
        "I am writing to refer a {a}-year-old {g} with {d}.",
        "I would be grateful if you could see this {a}-year-old {g} regarding {d}."]).format(
        a=case["age"], g="man" if man else "woman", d=case["dx"]))
    if case["sx"]:
        p.append(f"{he(case, True)} has had {case['sx']}.")
    hist = history_items(rng, case, keep) + social_items(rng, case)
    if hist:
        p.append(f"Relevant background: {join_list(rng, hist)}.")
    if keep["fhx"] and case["fhx"]:
        p.append(sent("Family history: " + case["fhx"]))
    done = proc_frags(case)
    if case["distractor"]:
        done.append(case["distractor"])
    if done:
        p.append("So far: " + "; ".join(done) + ".")
    if case["neg_proc"]:
        p.append(sent(case["neg_proc"]))
    p.append(rng.choice(["Kind regards,", "Many thanks,", "Sincerely,"]) + f" Dr. {rng.choice(NAMES)}")
    return "\n".join(p)


# Nursing and hand-over styles, added with DX_SYNONYMS_MORE and used in train and valid only. In each,
# a labelled line that other styles use for the diagnosis holds something else (focus charting's
# "A:" is the nurse's action), so the model must find the diagnosis by meaning, not by position.
def style_nursing_focus(rng, case, keep):
    lines = [rng.choice(["Nursing note {t} (focus charting)", "RN note {t}", "Focus note - {t}", "Nursing DAR {t}"])
             .format(t=time_str(rng))]
    lines.append(rng.choice(["Focus: ", "F: ", "Problem focus: "]) + case["dx"])
    data = [demo(rng, case) + (", " + case["sx"] if case["sx"] else "")]
    data += history_items(rng, case, keep) + social_items(rng, case)
    if keep["vitals"]:
        data.append(case["vitals"])
    if exam_txt(rng, case, keep):
        data.append(exam_txt(rng, case, keep))
    if case["distractor"]:
        data.append(case["distractor"])
    lines.append("D: " + sent("; ".join(data)))
    acts = proc_frags(case) + ([case["neg_proc"]] if case["neg_proc"] else [])
    acts.append(rng.choice(["MD notified", "pt educated", "call light in reach", "fall precautions"]))
    lines.append("A: " + sent("; ".join(acts)))
    lines.append("R: " + sent(rng.choice(["resting comfortably", "tolerated well", "no distress", "pain 3/10",
                                          "VSS, will monitor"])))
    return "\n".join(lines)


def style_ipass_handoff(rng, case, keep):
    severity = {"emergency": ["unstable", "watcher"], "urgent": ["watcher", "stable"], "routine": ["stable"]}
    lines = [rng.choice(["I-PASS", "Handoff (I-PASS)", "Sign-out, I-PASS format", "Night float sign-out"])]
    lines.append("Illness severity: " + rng.choice(severity[case["row"]["urgency"]]))
    summary = demo(rng, case) + " " + rng.choice(["admitted with", "here for", "being treated for", "w/"]) + " " \
        + case["dx"]
    if case["sx"]:
        summary += rng.choice([", presented with ", "; came in with "]) + case["sx"]
    hist = history_items(rng, case, keep)
    if hist:
        summary += ". Hx " + join_list(rng, hist)
    soc = social_items(rng, case)
    if soc:
        summary += ". " + sent("; ".join(soc))
    lines.append("Patient summary: " + sent(summary))
    acts = proc_frags(case) + ([case["neg_proc"]] if case["neg_proc"] else [])
    lines.append("Action list: " + sent("; ".join(acts) if acts else "none overnight"))
    aware = [case["distractor"]] if case["distractor"] else []
    if keep["vitals"]:
        aware.append("last VS " + case["vitals"])
    if keep["noise"] and case["noise_tests"]:
        aware.append(", ".join(case["noise_tests"]) + " back, fine")
    aware.append(rng.choice(["call rapid response if worse", "recheck in AM", "family aware"]))
    lines.append("Situation awareness: " + sent("; ".join(aware)))
    lines.append("Synthesis: " + sent(rng.choice(["receiver read back", "questions answered", "agreed with plan"])))
    return "\n".join(lines)


def style_nursing_narrative(rng, case, keep):
    entries = [sent(rng.choice(["Received pt from {w}. ", "Pt arrived from {w}. ", "Care assumed, report from {w}. "])
                    .format(w=rng.choice(["ED", "night shift", "PACU", "ICU"]))
                    + demo(rng, case) + " " + rng.choice(["admitted for", "here with", "on our unit for"]) + " "
                    + case["dx"])]
    if case["sx"]:
        entries.append(sent("Pt c/o " + case["sx"]))
    if keep["vitals"]:
        entries.append(sent("VS " + case["vitals"]))
    if exam_txt(rng, case, keep):
        entries.append(sent(exam_txt(rng, case, keep)))
    per_pt = history_items(rng, case, keep) + social_items(rng, case)
    if per_pt:
        entries.append(sent(rng.choice(["Per pt: ", "Hx: ", "Admission hx: "]) + "; ".join(per_pt)))
    entries += [sent(f) for f in proc_frags(case)]
    for extra in (case["distractor"], case["neg_proc"]):
        if extra:
            entries.insert(rng.randint(1, len(entries)), sent(extra))
    entries.append(rng.choice(["Will continue to monitor.", "Safety maintained.", "Bed low, call light in reach."]))
    t = rng.randint(6 * 60, 16 * 60)
    lines = []
    for e in entries:
        lines.append(f"{t // 60:02d}{t % 60:02d} {e}")
        t += rng.choice([15, 20, 30, 45, 60, 90])
    return "\n".join(lines)


def style_transfer_note(rng, case, keep):
    lines = [rng.choice(["Transfer note", "ICU transfer summary", "Transfer to floor", "Inter-facility transfer"])]
    lines.append(demo(rng, case) + " " + rng.choice(["transferred from", "accepted from", "moving from"]) + " "
                 + rng.choice(["OSH", "the ED", "ICU", "tele"]) + ". " + rng.choice(
                     ["Reason for transfer: ", "Transferred for ongoing care of ", "Primary problem: "])
                 + case["dx"] + ".")
    hist = history_items(rng, case, keep)
    if hist:
        lines.append("PMH: " + ", ".join(hist) + ".")
    soc = social_items(rng, case)
    if soc:
        lines.append("Social: " + "; ".join(soc) + ".")
    course = ([case["sx"]] if case["sx"] else []) + proc_frags(case)
    for extra in (case["distractor"], case["neg_proc"]):
        if extra:
            course.insert(rng.randint(0, len(course)), extra)
    if course:
        lines.append(rng.choice(["Course so far: ", "Summary: ", "Events: "]) + "; ".join(course) + ".")
    if keep["vitals"]:
        lines.append("VS at transfer: " + case["vitals"] + ".")
    if keep["meds"] and case["meds"]:
        lines.append("Meds: " + ", ".join(case["meds"]) + ".")
    lines.append(rng.choice(["Accepting: Dr. {n}.", "Receiving team: Dr. {n}.", "Code status: full."])
                 .format(n=rng.choice(NAMES)))
    return "\n".join(lines)


STYLES = {name: globals()["style_" + name] for name in TRAIN_STYLES + MORE_STYLES + HELDOUT_STYLES}


def postprocess(rng, note, style):
    words = note.split(" ")
    if rng.random() < 0.15:
        idx = [i for i, w in enumerate(words) if w.lower().strip(".,;:") in TYPOS]
        for i in rng.sample(idx, min(len(idx), rng.randint(1, 2))):
            w = words[i]
            core = w.strip(".,;:")
            rep = TYPOS[core.lower()]
            if core[:1].isupper():
                rep = rep.capitalize()
            words[i] = w.replace(core, rep, 1)
    note = " ".join(words)
    if style in ("ed_triage", "shorthand", "encounter_form") and rng.random() < 0.07:
        note = note.upper()
    return note


def render(rng, case, style, budget):
    order = ["meds", "fhx", "noise", "allergy", "exam", "pmh", "vitals"]
    keep = {k: rng.random() < 0.75 for k in order}
    while True:
        case["_placed"] = set()
        srng = random.Random(rng.random())
        note = STYLES[style](srng, case, keep)
        note = re.sub(r"[ \t]+\n", "\n", note).replace("..", ".").replace("  ", " ")
        note = postprocess(srng, note, style)
        fits = len(note.split()) <= MAX_WORDS and est_tokens(note) <= budget
        drop = [k for k in order if keep[k]]
        if fits:
            return note
        if not drop:
            return None
        keep[drop[0]] = False


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------

def build_split(split, seed, rows, primaries, secondaries, n, forbidden_notes):
    rng = random.Random(f"{seed}:{split}")
    picker = Picker(rng, split)
    records, meta, seen = [], [], set()
    order = []
    while len(order) < n:
        block = list(primaries)
        rng.shuffle(block)
        order += block
    order = order[:n]
    for code in order:
        while True:
            if split == "test" and rng.random() < 0.4:
                style = rng.choice(HELDOUT_STYLES)
            else:
                style = rng.choice(TRAIN_STYLES if split == "test" else TRAIN_STYLES + MORE_STYLES)
            if not (code == "S72.001A" and style == "telephone"):  # a fracture's first encounter is not a call
                break
        for _ in range(200):
            case = make_case(rng, picker, rows[code], secondaries)
            row = rows[code]
            answer = {"diagnosis": row["description"], "urgency": row["urgency"],
                      "procedures": case["procedures"], "billing_codes": case["billing"]}
            answer_json = json.dumps(answer)
            note = render(rng, case, style, NOTE_ANSWER_TOKENS - est_tokens(answer_json))
            if note is None or note in seen or note in forbidden_notes:
                continue
            break
        else:
            raise RuntimeError("could not make a unique note")
        seen.add(note)
        records.append({"messages": [{"role": "user", "content": PROMPT.format(note=note)},
                                     {"role": "assistant", "content": answer_json}]})
        meta.append({"code": code, "style": style, "note": note, "held_used": case["held_used"],
                     "billing": case["billing"]})
    return records, meta


def heldout_phrases():
    out = set()
    tables = [v for v in DX_SYNONYMS.values()] + [v[1] for v in PROCS.values()] + [
        SMOKER_POS, TOBACCO_USE_POS, TOBACCO_NEG, NONCOMPLIANCE_POS, NONCOMPLIANCE_NEG, HLD_POS, HLD_NEG,
        [d[0] for d in DISTRACTORS]]
    for t in tables:
        for item in t:
            text, held, _ = parse_phrase(item)
            if held and "{" not in text:
                out.add(text)
    return out


def self_check(splits, metas, rows, primaries):
    descs = {r["description"] for r in rows.values() if r["role"] == "primary"}
    all_codes = set(rows)
    for name, recs in splits.items():
        for rec in recs:
            user, asst = rec["messages"]
            assert user["content"].startswith("Extract medical billing information from this note.\n")
            ans = json.loads(asst["content"])
            assert list(ans) == ["diagnosis", "urgency", "procedures", "billing_codes"]
            assert asst["content"] == json.dumps(ans)
            assert ans["diagnosis"] in descs, ans["diagnosis"]
            primary = ans["billing_codes"][0]
            assert rows[primary]["description"] == ans["diagnosis"]
            assert ans["urgency"] == rows[primary]["urgency"]
            assert all(c in all_codes for c in ans["billing_codes"])
            assert all(rows[c]["role"] == "secondary" for c in ans["billing_codes"][1:])
            listed = rows[primary]["procedures"]
            assert [p for p in listed if p in ans["procedures"]] == ans["procedures"]
    train_notes = {m["note"] for m in metas["train"]}
    valid_notes = {m["note"] for m in metas["valid"]}
    assert not any(m["note"] in train_notes for m in metas["test"]), "test note in train"
    assert not any(m["note"] in train_notes for m in metas["valid"]), "valid note in train"
    assert not any(m["note"] in valid_notes for m in metas["test"]), "test note in valid"
    for name in ("train", "valid"):
        assert not any(m["style"] in HELDOUT_STYLES for m in metas[name])
        assert all(m["held_used"] == 0 for m in metas[name])
    assert {m["code"] for m in metas["train"]} == set(primaries), "a primary code is missing from train"
    # Held-out phrasings must not leak into train/valid text (word-boundary match, case-sensitive).
    held = heldout_phrases()
    for name in ("train", "valid"):
        blob = "\n".join(m["note"] for m in metas[name])
        for h in held:
            if len(h) >= 6 and re.search(r"(?<![\w-])" + re.escape(h) + r"(?![\w-])", blob):
                raise AssertionError(f"held-out phrasing {h!r} appears in {name}")
    for name, ms in metas.items():
        words = [len(m["note"].split()) for m in ms]
        assert max(words) <= 120, (name, max(words))


def report(metas):
    for name, ms in metas.items():
        words = [len(m["note"].split()) for m in ms]
        styles = Counter(m["style"] for m in ms)
        codes = Counter(m["code"] for m in ms)
        sec = Counter(c for m in ms for c in m["billing"][1:])
        held = sum(1 for m in ms if m["held_used"] or m["style"] in HELDOUT_STYLES)
        print(f"== {name}: {len(ms)} records; note words mean {sum(words) / len(words):.1f}, max {max(words)}; "
              f"records with a held-out style or phrasing: {held}")
        print("   styles: " + ", ".join(f"{k} {v}" for k, v in sorted(styles.items())))
        print("   codes:  " + ", ".join(f"{k} {v}" for k, v in sorted(codes.items())))
        print("   secondary codes: " + ", ".join(f"{k} {v}" for k, v in sorted(sec.items())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()

    table = load_codes(CODES_TSV)
    rows = {r["code"]: r for r in table}
    primaries = [r["code"] for r in table if r["role"] == "primary"]
    secondaries = {r["code"] for r in table if r["role"] == "secondary"}
    assert set(DX_SYNONYMS) == set(primaries) == set(SYMPTOMS), "phrase tables must cover every primary code"
    assert set(SECONDARY_ORDER) == secondaries, "SECONDARY_ORDER must list every secondary code"
    for r in table:
        for p in r["procedures"]:
            assert p in PROCS or r["role"] == "secondary", p

    splits, metas = {}, {}
    forbidden = set()
    for name in ("train", "valid", "test"):
        splits[name], metas[name] = build_split(name, args.seed, rows, primaries, secondaries,
                                                SIZES[name], forbidden)
        forbidden |= {m["note"] for m in metas[name]}
    self_check(splits, metas, rows, primaries)
    for name, recs in splits.items():
        with open(args.out / f"{name}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for rec in recs:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"source: {CODES_TSV_DISPLAY} (relative to the repository root)")
    report(metas)
    return 0


if __name__ == "__main__":
    sys.exit(main())
